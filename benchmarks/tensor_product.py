"""Tensor products: equiscale.o3 against e3nn 0.6, same inputs and weights, one process.

Cases (float32, E edges, once per thread count of --threads, default 1 and 2):
  (a) FullyConnectedTensorProduct("32x0e+32x1o+32x2e", "0e+1o+2e", "32x0e+32x1o+32x2e")
  (b) NequIP's convolution: channelwise uvu, "32x0e+32x1o+32x2e" x "0e+1o+2e", one output
      block per path up to l = 2 (15 paths), per-edge weights (E, weight_numel)
Forward and forward+backward (gradients for x, y and the weights) are timed interleaved with
e3nn, median of --repeats; the floor is the dense Clebsch-Gordan arithmetic at the matmul peak
measured in the same process, and GB/s counts the unavoidable traffic (x, y, out; plus grad, gx,
gy in the backward). On CPU, (a) runs equiscale's compiled uvw kernel and (b) the compiled
channelwise kernel uvu_scatter (EQUISCALE_KERNELS=off: the PyTorch fallback). Peak memory is the
growth of the peak resident set (VmHWM, reset just before) of a fresh subprocess running one
forward+backward (torch keeps no CPU allocator statistics).

    python benchmarks/tensor_product.py [--edges 20000] [--threads 1 2] [--repeats 7] [--compile]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch


def build(case: str, lib: str):
    """Module, its e3nn-style constructor arguments are identical for both libraries."""
    if lib == "e3nn":
        from e3nn import o3
    else:
        from equiscale.o3 import _tensor_product as tp_mod, _tp_sub as sub_mod

        class o3:  # noqa: N801  (the two modules this benchmark needs)
            TensorProduct = tp_mod.TensorProduct
            FullyConnectedTensorProduct = sub_mod.FullyConnectedTensorProduct
    irreps1, irreps2 = "32x0e+32x1o+32x2e", "0e+1o+2e"
    if case == "a":
        return o3.FullyConnectedTensorProduct(irreps1, irreps2, irreps1)
    from equiscale.o3._irreps import Irreps
    out, ins = [], []
    for i1, (mul, ir1) in enumerate(Irreps(irreps1)):
        for i2, (_, ir2) in enumerate(Irreps(irreps2)):
            for ir in ir1 * ir2:
                if ir.l <= 2:
                    ins.append((i1, i2, len(out), "uvu", True))
                    out.append((mul, str(ir)))
    return o3.TensorProduct(irreps1, irreps2, out, ins, shared_weights=False,
                            internal_weights=False)


def flops(case: str, tp) -> float:
    """Forward FLOPs per edge of the dense CG arithmetic (3j contraction + weights)."""
    total = 0
    for ins in tp.instructions:
        (m1, ir1), (_, ir2), (mo, iro) = (tp.irreps_in1[ins.i_in1], tp.irreps_in2[ins.i_in2],
                                          tp.irreps_out[ins.i_out])
        total += 2 * m1 * ir1.dim * ir2.dim * iro.dim
        total += 2 * m1 * mo * iro.dim if case == "a" else m1 * iro.dim
    return float(total)


def inputs(tp, edges: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(edges, tp.irreps_in1.dim, generator=g).requires_grad_()
    y = torch.randn(edges, tp.irreps_in2.dim, generator=g).requires_grad_()
    w = None
    if not tp.shared_weights:
        w = torch.randn(edges, tp.weight_numel, generator=g).requires_grad_()
    grad = torch.randn(edges, tp.irreps_out.dim, generator=g)
    return x, y, w, grad


def run(tp, x, y, w, grad, backward: bool):
    out = tp(x, y) if w is None else tp(x, y, w)
    if backward:
        out.backward(grad)
    return out


def traffic(tp, edges: int, backward: bool) -> float:
    """Unavoidable bytes (float32): read x, y (and per-edge weights), write out; backward also
    reads grad, x, y (and weights) and writes their gradients."""
    per_edge = tp.irreps_in1.dim + tp.irreps_in2.dim + tp.irreps_out.dim
    if not tp.shared_weights:
        per_edge += tp.weight_numel
    return 4.0 * edges * per_edge * (3 if backward else 1)


def matmul_peak(threads: int) -> float:
    a = torch.randn(2048, 2048)
    a @ a
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        a @ a
        ts.append(time.perf_counter() - t)
    return 2 * 2048**3 / min(ts) / 1e9


def memory_child(case: str, lib: str, edges: int, threads: int, compiled: bool) -> None:
    torch.set_num_threads(threads)
    tp = build(case, lib)
    if compiled:
        tp = torch.compile(tp)
    small = inputs(tp if not compiled else tp._orig_mod, 64)
    run(tp, *small, backward=True)  # first-call work (code generation, caches) before the baseline
    x, y, w, grad = inputs(tp if not compiled else tp._orig_mod, edges)
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
        f.write("5")
    run(tp, x, y, w, grad, backward=True)
    print(json.dumps({"peak_growth_mb": (_status_kb("VmHWM") - base) / 1024}))


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory(case: str, lib: str, edges: int, threads: int, compiled: bool = False) -> float:
    cmd = [sys.executable, __file__, "--memory-child", case, lib, "--edges", str(edges),
           "--threads", str(threads)] + (["--compile"] if compiled else [])
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_growth_mb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", type=int, default=20000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--cases", default="ab")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(ours)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-child", nargs=2, metavar=("CASE", "LIB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child, args.edges, args.threads[0], args.compile)
        return
    from equiscale import _kernels

    print("equiscale path:", "compiled kernels" if _kernels.load() else "PyTorch (kernels off or unavailable)")
    for threads in args.threads:
        run_all(args, threads)


def run_all(args, threads: int) -> None:
    torch.set_num_threads(threads)
    peak = matmul_peak(threads)
    print(f"\ntorch {torch.__version__}, {threads} threads, E = {args.edges}, float32; "
          f"matmul peak (2048^3) {peak:.0f} GFLOP/s")
    for case in args.cases:
        ref, ours = build(case, "e3nn"), build(case, "equiscale")
        ours.load_state_dict(ref.state_dict())
        x, y, w, grad = inputs(ref, args.edges)
        contenders = {"e3nn": ref, "equiscale": ours}
        if args.compile:
            contenders["equiscale+compile"] = torch.compile(ours)
        for mod in contenders.values():  # warm-up (and compilation)
            for backward in (False, True):
                run(mod, x, y, w, grad, backward)
        times = {(name, b): [] for name in contenders for b in (False, True)}
        for r in range(args.repeats):
            names = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
            for backward in (False, True):
                for name in names:
                    x.grad = y.grad = None
                    t = time.perf_counter()
                    run(contenders[name], x, y, w, grad, backward)
                    times[(name, backward)].append(time.perf_counter() - t)
        f = flops(case, ref) * args.edges
        print(f"\n({case}) {ref}\n    dense CG arithmetic {f / 1e9:.2f} GFLOP forward, "
              f"{3 * f / 1e9:.2f} forward+backward; floor {1e3 * f / peak / 1e9:.1f} / "
              f"{3e3 * f / peak / 1e9:.1f} ms")
        base = {b: statistics.median(times[("e3nn", b)]) for b in (False, True)}
        for name in contenders:
            row = []
            for b, label in ((False, "fwd"), (True, "fwd+bwd")):
                t = statistics.median(times[(name, b)])
                work = f * (3 if b else 1)
                row.append(f"{label} {1e3 * t:7.1f} ms (x{base[b] / t:4.1f}, "
                           f"{work / t / 1e9:5.1f} GFLOP/s, {traffic(ref, args.edges, b) / t / 1e9:4.1f} GB/s)")
            print(f"    {name:18s} " + "  ".join(row))
        if not args.no_memory:
            for name, lib in (("e3nn", "e3nn"), ("equiscale", "equiscale")):
                mb = peak_memory(case, lib, args.edges, threads)
                print(f"    peak memory fwd+bwd {name:10s} {mb:7.0f} MB (resident growth)")


if __name__ == "__main__":
    main()
