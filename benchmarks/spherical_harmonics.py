"""Benchmark: equiscale.o3.spherical_harmonics against e3nn 0.6 and sphericart-torch.

Same process, same float32 inputs, interleaved (each repeat runs every library once, in rotating
order), median over repeats; once per thread count of ``--threads`` (default 1 and 2: every
kernel reports its speed at one thread and at all cores). On CPU equiscale runs its compiled
kernel (``EQUISCALE_KERNELS=off`` times the PyTorch fallback instead). Forward is ``Y(x)`` with ``x`` not
requiring grad; forward+backward is ``Y(x)`` then the gradient of ``sum(Y * W)`` with respect to
``x`` for a fixed random ``W`` (taken as ``torch.autograd.grad(Y, x, W)``, the same
vector-Jacobian product without timing an extra multiply and sum). All libraries compute
``normalize=True``, "integral" normalisation, all degrees ``0..lmax``.

sphericart orders its input axes differently: ``sphericart(x[:, [2, 0, 1]])`` equals e3nn's
"integral" harmonics of ``x`` (checked once below, before timing).

Run:  .venv/bin/python benchmarks/spherical_harmonics.py [--n 100000] [--repeats 30] [--threads 1 2]
      [--compile]   (adds the opt-in torch.compile path; compilation is done before timing)
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable, Dict, List

import torch

from equiscale.o3 import spherical_harmonics

BANDWIDTH = 30e9  # bytes/s, this machine's measured memory bandwidth (shared/PEERS.md)
PEAK = 150e9  # FLOP/s, this machine's measured matmul peak (shared/PEERS.md)


def _libraries(lmax: int, compiled: bool) -> Dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    ls = list(range(lmax + 1))
    libs: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "equiscale": lambda x: spherical_harmonics(ls, x, True),
    }
    if compiled:  # opt-in path: torch.compile traces the plain-op recurrence and fuses it
        libs["eq+compile"] = torch.compile(lambda x: spherical_harmonics(ls, x, True), dynamic=True)
    try:
        import e3nn.o3

        module = e3nn.o3.SphericalHarmonics(ls, True)
        libs["e3nn"] = module
    except ImportError:
        print("e3nn not installed: skipped")
    try:
        import sphericart.torch

        sph = sphericart.torch.SphericalHarmonics(lmax)
        perm = torch.tensor([2, 0, 1])
        libs["sphericart"] = lambda x: sph(x.index_select(1, perm))
    except ImportError:
        print("sphericart-torch not installed: skipped")
    return libs


def _check(libs, x: torch.Tensor) -> None:
    reference = libs["equiscale"](x.double())
    for name, f in libs.items():
        err = (f(x).double() - reference).abs().max().item()
        print(f"  check {name:10s} float32 vs equiscale float64: max |diff| = {err:.1e}")
        assert err < 1e-4, f"{name} disagrees with equiscale"


def _time(f: Callable[[], object]) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def _traffic(n: int, lmax: int) -> Dict[str, float]:
    """Unavoidable bytes: read x, write Y (forward); read dY and x, write dx (backward)."""
    d = (lmax + 1) ** 2
    fwd_bytes = 4 * n * (3 + d)
    bwd_bytes = 4 * n * (d + 3 + 3)  # dY in, x in, dx out (Y recomputed in cache)
    return {"forward": fwd_bytes, "forward+backward": fwd_bytes + bwd_bytes}


def _floor(n: int, lmax: int) -> Dict[str, float]:
    """Seconds for the unavoidable traffic at 30 GB/s (or the arithmetic at 150 GFLOP/s if more)."""
    d = (lmax + 1) ** 2
    flops = n * (10 + 3 * d)  # normalisation + about three per harmonic (one fused step, scale)
    traffic = _traffic(n, lmax)
    return {"forward": max(traffic["forward"] / BANDWIDTH, flops / PEAK),
            "forward+backward": max(traffic["forward+backward"] / BANDWIDTH, 3 * flops / PEAK)}


def run(n: int, lmaxes: List[int], repeats: int, threads: int = 2, compiled: bool = False,
        seed: int = 0) -> None:
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} threads, load average at start {os.getloadavg()}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    rows = []
    for lmax in lmaxes:
        libs = _libraries(lmax, compiled)
        print(f"lmax = {lmax}")
        start = time.perf_counter()
        _check(libs, x)  # also compiles the opt-in path, outside the timings
        print(f"  checks (and compilation, if any) took {time.perf_counter() - start:.1f} s")
        w = torch.randn(n, (lmax + 1) ** 2, generator=gen)
        xg = x.clone().requires_grad_(True)
        tasks = {}
        for name, f in libs.items():
            tasks[(name, "forward")] = (lambda f=f, x=x: f(x))
            tasks[(name, "forward+backward")] = (lambda f=f, xg=xg, w=w: torch.autograd.grad(f(xg), xg, w))
        times: Dict[tuple, List[float]] = {key: [] for key in tasks}
        keys = list(tasks)
        for key in keys:  # warm-up
            tasks[key]()
        for r in range(repeats):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                times[key].append(_time(tasks[key]))
        floor, traffic = _floor(n, lmax), _traffic(n, lmax)
        for op in ("forward", "forward+backward"):
            med = {name: statistics.median(times[(name, op)]) for name in libs}
            rows.append((lmax, op, med, floor[op], traffic[op]))
    _print_table(rows, n, repeats, threads, compiled)
    print(f"load average at end {os.getloadavg()} (the machine is shared: compare ratios, not times)")


def _print_table(rows, n: int, repeats: int, threads: int, compiled: bool) -> None:
    names = ["equiscale"] + (["eq+compile"] if compiled else []) + ["e3nn", "sphericart"]
    print(f"\nN = {n} float32 vectors, {threads} threads, median of {repeats} interleaved repeats, times in ms")
    ratios = [("e3nn", "equiscale", "e3nn/eq"), ("sphericart", "equiscale", "sc/eq")]
    if compiled:
        ratios.append(("sphericart", "eq+compile", "sc/cmp"))
    header = (f"{'lmax':>4} {'pass':>16} " + " ".join(f"{n_:>10}" for n_ in names)
              + "".join(f" {label:>8}" for _, _, label in ratios) + f" {'floor':>7} {'eq/floor':>8} {'eq GB/s':>8}")
    print(header)
    print("-" * len(header))
    for lmax, op, med, floor, traffic in rows:
        cells = " ".join(f"{med[k] * 1e3:10.2f}" if k in med else f"{'-':>10}" for k in names)
        ratio_cells = "".join(f" {med[a] / med[b]:8.2f}" if a in med and b in med else f" {'-':>8}"
                              for a, b, _ in ratios)
        print(f"{lmax:>4} {op:>16} {cells}{ratio_cells} {floor * 1e3:7.2f} {med['equiscale'] / floor:8.1f}"
              f" {traffic / med['equiscale'] / 1e9:8.1f}")
    print("ratios > 1: equiscale is faster. floor: max(bytes / 30 GB/s, FLOPs / 150 GFLOP/s); "
          "eq GB/s: unavoidable bytes / equiscale's time.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--lmax", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile path")
    args = parser.parse_args()
    from equiscale import _kernels

    print("equiscale path:", "compiled kernels" if _kernels.load() else "PyTorch (kernels off or unavailable)")
    for threads in args.threads:
        run(args.n, args.lmax, args.repeats, threads, args.compile)


if __name__ == "__main__":
    main()
