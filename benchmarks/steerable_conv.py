"""Steerable convolution speed, basis construction time and accuracy: equiscale against escnn.

equiscale's SteerableConv2d / SteerableConv3d against escnn's R2Conv / R3Conv with the same field
types, a plain nn.Conv2d / nn.Conv3d of the same channel counts, and (eval only) the plain
convolution returned by ``SteerableConv*.export()``. Cases (issue 6), float32:

* A: C(8), 16 -> 16 regular fields (128 channels), kernel 5, padding 2, batch 8, ``--size-a``
  (64x64 is asked for; one train forward+backward takes ~6 s single-threaded here, so the default
  is 32x32);
* B: SO(2), 8 scalars + 8 frequency-1 + 4 frequency-2 fields (32 channels) in and out, kernel 5,
  padding 2, batch 8, 64x64 (escnn: ``rot2dOnR2(N=-1, maximum_frequency=4)``);
* 3D: SO(3), 4 scalars + 4 vectors (l=1) + 2 l=2 fields (26 channels) in and out, kernel 5,
  padding 2, batch 2, 24^3 (escnn: ``rot3dOnR3()``).

Our layers use their defaults (rings 0..(k-1)/2, sigma 0.6, harmonics ``J <= min(2 r, 2)`` for
k = 5); escnn its (rings 0..(k-1)/2, sigma 0.6 / 0.4 on the outer ring, frequencies <= 2): the same
parameter count in all three cases. Each case also runs ours without the cap (``max_frequency=4``,
``J <= 2 r``: the aliasing harmonics that the cap removes).

Speed: timed in one process, interleaved (the order rotating every repeat), median and minimum of
``--repeats``: ``train()`` forward (with autograd), forward + backward (weights and input),
``eval()`` forward under ``torch.no_grad()`` (ours: the cached filter; escnn: the filter it expands
in ``eval()``), and the train-mode filter expansion alone (forward + backward).

Construction (``--construction``, on by default): each layer is built in a fresh process (escnn
keeps its bases in memory, so only the first construction in a process is honest) and timed
without the imports; escnn both with an empty disk cache (its joblib cache redirected to a new
temporary directory) and with that cache filled by the previous process. escnn's own cache lives in
``escnn/group/_cache`` inside its package directory; the script lists what is there at the end.
Also ``equiscale.kernels.kernel_basis`` alone.

Accuracy (``--accuracy``): equivariance error at the rotation centre for rotations that are not
grid symmetries. Inputs are sums of Gaussian blobs with random centres and random amplitude
vectors; the rotated input ``rho_in(g) w(g^-1 p)`` is evaluated analytically (centres rotated,
amplitudes multiplied by ``rho_in(g)``), so only the layer's kernel sampling is tested. Error:
``|out(g.w)(0) - rho_out(g) out(w)(0)| / |out(w)(0)|`` (2-norms over the fields of one kind),
worst of ``--trials``. Each library is driven in its own coordinates: equiscale's grid has x along
W and y along H (z along D); escnn samples its kernels at x = W, y = -H (z = -D), so its rotations
turn clockwise in our picture; using each library's own spatial action and ``rho`` makes the
comparison direction-free.

escnn cannot share equiscale's environment (lie-learn-escience pins numpy < 2): run this from a
second venv holding torch, escnn and equiscale (editable), e.g.
``.venv-escnn/bin/python benchmarks/steerable_conv.py --accuracy``; without escnn its rows are
skipped.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from _common import gaussian_blobs, load_average

from equiscale.groups import SO2, SO3, C, direct_sum
from equiscale.kernels import kernel_basis
from equiscale.nn.grids import FieldType, SteerableConv2d, SteerableConv3d

gspaces = enn = None  # escnn, imported by main() (a construction child first redirects its disk cache)


def _import_escnn(cache_dir: str | None = None) -> None:
    global gspaces, enn
    if cache_dir:
        import joblib  # escnn builds joblib.Memory(<package>/group/_cache) at import: point it elsewhere

        memory = joblib.Memory
        joblib.Memory = lambda location=None, **kw: memory(cache_dir, **kw)
    try:
        from escnn import gspaces as escnn_gspaces
        from escnn import nn as escnn_nn
    except ImportError:  # pragma: no cover - depends on the environment
        return
    gspaces, enn = escnn_gspaces, escnn_nn

OURS, MATCHED, EXPORT, ESCNN, PLAIN = ("equiscale", "equiscale no cap (max_frequency=4)", "equiscale export()", "escnn",
                                       "torch plain conv")
MODES = ["train forward", "train forward+backward", "eval forward (no_grad)", "train filter expansion fwd+bwd"]


# --- the three cases ------------------------------------------------------------------------------
def _our_types(case: str) -> tuple[Any, FieldType, FieldType]:
    if case == "A":
        g = C(8)
        reps = [g.regular_representation()] * 16
    elif case == "B":
        g = SO2()
        reps = [g.irrep(0)] * 8 + [g.irrep(1)] * 8 + [g.irrep(2)] * 4
    else:
        g = SO3()
        reps = [g.irrep(0)] * 4 + [g.irrep(1)] * 4 + [g.irrep(2)] * 2
    return g, FieldType(g, reps), FieldType(g, reps)


def _escnn_types(case: str):
    if case == "A":
        space = gspaces.rot2dOnR2(N=8)
        reps = [space.regular_repr] * 16
    elif case == "B":
        space = gspaces.rot2dOnR2(N=-1, maximum_frequency=4)
        reps = [space.irrep(0)] * 8 + [space.irrep(1)] * 8 + [space.irrep(2)] * 4
    else:
        space = gspaces.rot3dOnR3()
        reps = [space.irrep(0)] * 4 + [space.irrep(1)] * 4 + [space.irrep(2)] * 2
    return space, enn.FieldType(space, reps), enn.FieldType(space, reps)


def _our_layer(case: str, in_type: FieldType, out_type: FieldType, **basis: Any) -> torch.nn.Module:
    cls = SteerableConv3d if case == "3D" else SteerableConv2d
    return cls(in_type, out_type, 5, padding=2, **basis)


def _escnn_layer(case: str, in_type, out_type):
    cls = enn.R3Conv if case == "3D" else enn.R2Conv
    return cls(in_type, out_type, kernel_size=5, padding=2)


def _escnn_call(module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: module(enn.GeometricTensor(x, module.in_type)).tensor


@dataclass
class Case:
    key: str
    title: str
    shape: tuple[int, ...]
    channels: int
    modules: dict[str, tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]] = field(default_factory=dict)

    @property
    def flop(self) -> float:  # the dense convolution's forward
        return 2 * self.shape[0] * math.prod(self.shape[2:]) * self.channels**2 * 5 ** (len(self.shape) - 2)


def build_case(key: str, args: argparse.Namespace) -> Case:
    torch.manual_seed(0)
    if key == "A":
        case = Case(key, "A: C(8), 16 -> 16 regular fields", (8, 128, args.size_a, args.size_a), 128)
    elif key == "B":
        case = Case(key, "B: SO(2), 8x0 + 8x1 + 4x2 -> same", (8, 32, args.size_b, args.size_b), 32)
    else:
        case = Case(key, "3D: SO(3), 4xl0 + 4xl1 + 2xl2 -> same", (2, 26) + (args.size_3d,) * 3, 26)
    _, in_type, out_type = _our_types(key)
    ours = _our_layer(key, in_type, out_type)
    matched = _our_layer(key, in_type, out_type, max_frequency=4)
    plain_cls = torch.nn.Conv3d if key == "3D" else torch.nn.Conv2d
    plain = plain_cls(case.channels, case.channels, 5, padding=2)
    case.modules[OURS] = (ours, ours)
    case.modules[MATCHED] = (matched, matched)
    if enn is not None:
        _, e_in, e_out = _escnn_types(key)
        theirs = _escnn_layer(key, e_in, e_out)
        case.modules[ESCNN] = (theirs, _escnn_call(theirs))
    case.modules[PLAIN] = (plain, plain)
    exported = ours.export()
    case.modules[EXPORT] = (exported, exported)
    return case


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- speed ----------------------------------------------------------------------------------------
def _time(fn: Callable[[], None], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def _runner(mode: str, name: str, module: torch.nn.Module, call, x: torch.Tensor) -> Callable[[], None] | None:
    """A closure running one call of ``mode``, after putting ``module`` in the right state (None: not applicable)."""
    if mode == "train filter expansion fwd+bwd":
        if name in (EXPORT, PLAIN):
            return None
        module.train()
        for p in module.parameters():
            p.requires_grad_(True)
        if name == ESCNN:
            expand = module.expand_parameters
        else:
            expand = module.expand

        def run() -> None:
            weight, bias = expand()
            (weight.square().sum() + (0 if bias is None else bias.square().sum())).backward()
        return run
    if mode.startswith("train"):
        if name == EXPORT:
            return None
        module.train()
        for p in module.parameters():
            p.requires_grad_(True)
        if mode == "train forward":
            return lambda: call(x)
        xg = x.clone().requires_grad_()
        return lambda: call(xg).sum().backward()
    with torch.no_grad():  # escnn expands its cached filter in .eval(): keep autograd out of it
        module.eval()
        call(x)  # fill the caches

    def run_eval() -> None:
        with torch.no_grad():
            call(x)
    return run_eval


def benchmark_speed(case: Case, args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    torch.manual_seed(1)
    x = torch.randn(case.shape)
    results: dict[tuple[str, str], list[float]] = {}
    names = list(case.modules)
    for mode in MODES:
        runners = {}
        warm = 0.0
        for name in names:  # warm-up, and the number of calls per repeat (same for every implementation)
            module, call = case.modules[name]
            runner = _runner(mode, name, module, call, x)
            if runner is not None:
                warm = max(warm, _time(runner, 1))
                runners[name] = runner
        iterations = max(1, min(50, round(args.target / max(warm, 1e-6))))
        order = list(runners)
        for rep in range(args.repeats):  # interleaved, the order rotating every repeat
            for name in order[rep % len(order):] + order[: rep % len(order)]:
                module, call = case.modules[name]
                runner = _runner(mode, name, module, call, x)  # (re)sets train/eval state
                results.setdefault((mode, name), []).append(_time(runner, iterations))
        results[(mode, "_iterations")] = [iterations]
    return results


def print_speed(case: Case, results: dict, args: argparse.Namespace, load: tuple[str, str]) -> None:
    grid = "x".join(map(str, case.shape[2:]))
    print(f"\n### {case.title}: {case.channels} channels, kernel 5, padding 2, batch {case.shape[0]}, {grid}, float32")
    print(f"\n{torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats; load average {load[0]} at the "
          f"start, {load[1]} at the end; dense conv forward {case.flop / 1e9:.2f} GFLOP\n")
    print("| mode | implementation | calls/repeat | median (ms) | min (ms) | median vs plain | min vs plain | "
          "median vs escnn | min vs escnn | GFLOP/s (min) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        plain = results.get((mode, PLAIN))
        escnn = results.get((mode, ESCNN))
        work = case.flop * (3 if mode == "train forward+backward" else 1)
        for name in case.modules:
            t = results.get((mode, name))
            if t is None:
                continue
            med, low = statistics.median(t), min(t)

            def ratio(ref: list[float] | None, f: Callable[[list[float]], float], t: list[float] = t) -> str:
                return f"{f(t) / f(ref):.2f}x" if ref else "-"
            rate = "-" if mode.startswith("train filter") else f"{work / low / 1e9:.0f}"
            print(f"| {mode} | {name} | {results[(mode, '_iterations')][0]} | {med * 1e3:.1f} | {low * 1e3:.1f} | "
                  f"{ratio(plain, statistics.median)} | {ratio(plain, min)} | {ratio(escnn, statistics.median)} | "
                  f"{ratio(escnn, min)} | {rate} |")


def print_parameters(cases: list[Case]) -> None:
    print("\n### Learnable parameters (basis coefficients + bias)\n")
    print("| case | " + " | ".join(n for n in (OURS, MATCHED, ESCNN, PLAIN)) + " |")
    print("|---|---|---|---|---|")
    for case in cases:
        cells = [str(_parameters(case.modules[n][0])) if n in case.modules else "-" for n in (OURS, MATCHED, ESCNN, PLAIN)]
        print(f"| {case.title} | " + " | ".join(cells) + " |")


# --- construction ---------------------------------------------------------------------------------
def _child_construct(args: argparse.Namespace) -> None:
    """Runs in a fresh process: time the first (and a second) construction of one layer, print JSON."""
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {}
    if args.child == "escnn":
        start = time.perf_counter()
        _import_escnn(args.cache_dir)
        out["import_s"] = time.perf_counter() - start
        start = time.perf_counter()
        _, e_in, e_out = _escnn_types(args.case)
        out["types_s"] = time.perf_counter() - start
        for key in ("first_s", "second_s"):
            torch.manual_seed(0)
            start = time.perf_counter()
            layer = _escnn_layer(args.case, e_in, e_out)
            out[key] = time.perf_counter() - start
        out["parameters"] = _parameters(layer)
    elif args.child == "ours":
        start = time.perf_counter()
        _, in_type, out_type = _our_types(args.case)
        out["types_s"] = time.perf_counter() - start
        for key in ("first_s", "second_s"):
            torch.manual_seed(0)
            start = time.perf_counter()
            layer = _our_layer(args.case, in_type, out_type)
            out[key] = time.perf_counter() - start
        out["parameters"] = _parameters(layer)
    else:  # kernel_basis alone
        if args.case == "A":
            g = C(8)
            rep = direct_sum(*[g.regular_representation()] * 16)
        else:
            g = SO3()
            rep = direct_sum(g.irrep(0), g.irrep(1), g.irrep(2))
        for key in ("first_s", "second_s"):
            start = time.perf_counter()
            basis = kernel_basis(g, rep, rep, 5)
            out[key] = time.perf_counter() - start
        out["kernels"] = len(basis)
        dense = len(basis) * 125 * rep.dim**2 * 8 if args.case == "3D" else len(basis) * 25 * rep.dim**2 * 8
        out["on_grid_bytes"] = dense
        if dense < 2e9:  # on_grid is dense: (len, out.dim, in.dim, k^d) float64
            start = time.perf_counter()
            basis.on_grid(5)
            out["on_grid_s"] = time.perf_counter() - start
        if args.case == "A":  # what SteerableConv2d builds instead: one basis per pair of distinct field types
            reg = g.regular_representation()
            for key in ("pair_first_s", "pair_second_s"):
                start = time.perf_counter()
                kernel_basis(g, reg, reg, 5).on_grid(5)
                out[key] = time.perf_counter() - start
    print("JSON " + json.dumps(out))


def _spawn(args: argparse.Namespace, what: str, case: str, cache_dir: str | None = None) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--child", what, "--case", case, "--threads",
               str(args.threads)]
    if cache_dir:
        command += ["--cache-dir", cache_dir]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    for line in done.stdout.splitlines():
        if line.startswith("JSON "):
            return json.loads(line[5:])
    raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")


def benchmark_construction(args: argparse.Namespace) -> None:
    print(f"\n### Construction time, fresh process each (imports not timed), {args.threads} thread(s); "
          f"load average {load_average()}\n")
    print("| case | equiscale 1st (s) | equiscale 2nd (s) | escnn gspace+types (s) | escnn 1st, empty disk cache (s) | "
          "escnn 1st, warm disk cache (s) | escnn 2nd in-process (s) | escnn/ours, empty cache | escnn/ours, warm cache |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in ("A", "B", "3D"):
        ours = _spawn(args, "ours", case)
        if enn is None:
            print(f"| {case} | {ours['first_s']:.3f} | {ours['second_s']:.3f} | - | - | - | - | - | - |")
            continue
        with tempfile.TemporaryDirectory(prefix="escnn-cache-") as cache:
            cold = _spawn(args, "escnn", case, cache)
            warm = _spawn(args, "escnn", case, cache)
        print(f"| {case} | {ours['first_s']:.3f} | {ours['second_s']:.3f} | {cold['types_s']:.3f} | "
              f"{cold['first_s']:.2f} | {warm['first_s']:.2f} | {warm['second_s']:.3f} | "
              f"{cold['first_s'] / ours['first_s']:.0f}x | {warm['first_s'] / ours['first_s']:.0f}x |")
    print(f"\n### equiscale.kernels.kernel_basis alone (kernel 5), fresh process; load average {load_average()}\n")
    print("| basis | kernels | 1st call (s) | 2nd call (s) | on_grid(5) (s) |")
    print("|---|---|---|---|---|")
    a = _spawn(args, "basis", "A")
    grid = f"{a['on_grid_s']:.3f}" if "on_grid_s" in a else f"not run: dense result {a['on_grid_bytes'] / 1e9:.0f} GB"
    print(f"| C(8), 16 regular fields -> 16 regular fields (128-dim direct sums) | {a['kernels']} | {a['first_s']:.3f} | "
          f"{a['second_s']:.3f} | {grid} |")
    print(f"| C(8), regular -> regular (the one pair SteerableConv2d builds), incl. on_grid | 120 | "
          f"{a['pair_first_s']:.3f} | {a['pair_second_s']:.3f} | (included) |")
    b = _spawn(args, "basis", "3D")
    print(f"| SO(3), l = 0+1+2 -> l = 0+1+2, 5x5x5 | {b['kernels']} | {b['first_s']:.3f} | {b['second_s']:.3f} | "
          f"{b['on_grid_s']:.3f} |")


def escnn_disk_cache() -> None:
    if enn is None:
        return
    import escnn.group

    root = escnn.group.__cache_path__
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f != ".gitignore"]
    size = sum(os.path.getsize(f) for f in files)
    kinds = sorted({os.path.relpath(f, root).split(os.sep)[3] for f in files if len(os.path.relpath(f, root).split(os.sep)) > 4})
    print(f"\nescnn's disk cache: {root}: {len(files)} files, {size / 1e3:.0f} kB ({', '.join(kinds) or 'empty'})")


# --- accuracy -------------------------------------------------------------------------------------
def _grid(size: int, dims: int, frame: torch.Tensor) -> torch.Tensor:
    """Library coordinates of the grid points: ``frame @ (W, H[, D]) offsets``, shape ``(size,)*dims + (dims,)``."""
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    axes = torch.meshgrid(*([c] * dims), indexing="ij")  # array order (D,) H, W
    array_xyz = torch.stack([axes[dims - 1 - i] for i in range(dims)], -1)  # (W, H[, D])
    return array_xyz @ frame.T


@dataclass
class Equivariance:
    """One library's layer and how its group acts: ``action(g)`` spatial matrix, ``rho_in/out(g)``."""

    call: Callable[[torch.Tensor], torch.Tensor]
    frame: torch.Tensor  # library coordinates = frame @ (W, H[, D]) offsets
    action: Callable[[Any], torch.Tensor]
    rho_in: Callable[[Any], torch.Tensor]
    rho_out: Callable[[Any], torch.Tensor]
    channels_in: int
    kinds: dict[str, list[int]]  # output channels of each field kind


def centre_error(lib: Equivariance, g: Any, width: float, trials: int, size: int, dtype: torch.dtype,
                 spread: float) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    dims = lib.frame.shape[0]
    points = _grid(size, dims, lib.frame)
    a, r_in, r_out = lib.action(g), lib.rho_in(g), lib.rho_out(g)
    centre = (0, slice(None)) + (size // 2,) * dims
    worst = {kind: 0.0 for kind in lib.kinds}
    with torch.no_grad():
        for _ in range(trials):
            centres = torch.randn(6, dims, dtype=torch.float64, generator=generator) * spread
            amplitudes = torch.randn(6, lib.channels_in, dtype=torch.float64, generator=generator)
            y = lib.call(gaussian_blobs(points, centres, amplitudes, width).to(dtype))[centre].double()
            moved = lib.call(gaussian_blobs(points, centres @ a.T, amplitudes @ r_in.T, width).to(dtype))[centre].double()
            diff = moved - r_out @ y
            for kind, channels in lib.kinds.items():
                worst[kind] = max(worst[kind], float(diff[channels].norm() / y[channels].norm()))
    return worst


def _kinds(sizes: list[tuple[str, int]]) -> dict[str, list[int]]:
    kinds: dict[str, list[int]] = {}
    start = 0
    for kind, dim in sizes:
        kinds.setdefault(kind, []).extend(range(start, start + dim))
        start += dim
    kinds["all fields"] = list(range(start))
    return kinds


def _accuracy_libraries(key: str, dtype: torch.dtype) -> dict[str, tuple[Equivariance, list[tuple[str, Any]]]]:
    """Per library: the layer and its (rotation label, group element) list."""
    torch.manual_seed(2)
    libs: dict[str, tuple[Equivariance, list[tuple[str, Any]]]] = {}
    if key == "A":
        g = C(8)
        reg, vec = g.regular_representation(), g.irrep(1)
        in_type = FieldType(g, [reg] * 16)
        out_type = FieldType(g, [reg] * 16 + [vec] * 8)
        kinds = _kinds([("regular", 8)] * 16 + [("vector (irrep 1)", 2)] * 8)
        rotations = [("45 deg", torch.tensor(1)), ("90 deg", torch.tensor(2))]
    elif key == "B":
        g = SO2()
        _, in_type, out_type = _our_types("B")
        kinds = _kinds([("scalar", 1)] * 8 + [("vector (frequency 1)", 2)] * 8 + [("frequency 2", 2)] * 4)
        rotations = [(f"{d} deg", _so2(math.radians(d))) for d in (30, 45, 90)]
    else:
        g = SO3()
        in_type = FieldType(g, [g.irrep(0)] * 2)
        out_type = FieldType(g, [g.irrep(1)] * 4)
        kinds = _kinds([("vector (l=1)", 3)] * 4)
        random_rotation = g.sample(1, generator=torch.Generator().manual_seed(3))[0]
        quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        rotations = [("random", random_rotation), ("90 deg about z", quarter)]
    spatial = g.standard_representation() if key != "3D" else None
    for name, basis in ((OURS, {}), (MATCHED, {"max_frequency": 4}))[: 1 if key == "3D" else 2]:  # 3D: no J > 2 here
        ours = _our_layer(key, in_type, out_type, dtype=dtype, **basis)
        libs[name] = (Equivariance(
            call=ours, frame=torch.eye(3 if key == "3D" else 2, dtype=torch.float64),
            action=(lambda e: e) if key == "3D" else (lambda e: spatial(e)),
            rho_in=lambda e: in_type.representation(e), rho_out=lambda e: out_type.representation(e),
            channels_in=in_type.size, kinds=kinds), rotations)
    if enn is None:
        return libs
    if key == "A":
        space = gspaces.rot2dOnR2(N=8)
        e_in = enn.FieldType(space, [space.regular_repr] * 16)
        e_out = enn.FieldType(space, [space.regular_repr] * 16 + [space.irrep(1)] * 8)
        e_rot = [("45 deg", space.fibergroup.element(1)), ("90 deg", space.fibergroup.element(2))]
    elif key == "B":
        space, e_in, e_out = _escnn_types("B")
        e_rot = [(f"{d} deg", space.fibergroup.element(math.radians(d))) for d in (30, 45, 90)]
    else:
        space = gspaces.rot3dOnR3()
        e_in = enn.FieldType(space, [space.irrep(0)] * 2)
        e_out = enn.FieldType(space, [space.irrep(1)] * 4)
        e_rot = [(label, space.fibergroup.element(matrix.numpy(), "MAT")) for label, matrix in rotations]
    theirs = _escnn_layer(key, e_in, e_out)
    if dtype == torch.float64:
        theirs = theirs.double()
    with torch.no_grad():
        theirs.eval()

    def matrix(m: Any) -> torch.Tensor:
        return torch.as_tensor(m, dtype=torch.float64)
    frame = torch.diag(torch.tensor([1.0, -1.0, -1.0] if key == "3D" else [1.0, -1.0], dtype=torch.float64))
    libs[ESCNN] = (Equivariance(
        call=_escnn_call(theirs), frame=frame, action=lambda e: matrix(space.basespace_action(e)),
        rho_in=lambda e: matrix(e_in.representation(e)), rho_out=lambda e: matrix(e_out.representation(e)),
        channels_in=e_in.size, kinds=kinds), e_rot)
    return libs


def _so2(angle: float) -> torch.Tensor:
    return torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)


def benchmark_accuracy(args: argparse.Namespace) -> None:
    print(f"\n### Equivariance error at the rotation centre, worst of {args.trials} random inputs of 6 Gaussian blobs "
          f"(centres spread 4 px 2D / 3 px 3D), kernel 5; |out(g.w)(0) - rho_out(g) out(w)(0)| / |out(w)(0)|\n")
    print("Layers: A: C(8) 16 regular -> 16 regular + 8 irrep-1 (vector) fields; B: the SO(2) speed case's types; "
          "3D: SO(3) 2 scalars -> 4 vectors (l=1).\n")
    widths = (1.0, 2.0, 3.0)
    print("| case | implementation | rotation | dtype | output fields | " + " | ".join(f"width {w:g} px" for w in widths) + " |")
    print("|---|---|---|---|---|" + "---|" * len(widths))
    for key in ("A", "B", "3D"):
        for dtype in (torch.float32, torch.float64):
            for name, (lib, rotations) in _accuracy_libraries(key, dtype).items():
                for label, g in rotations:
                    if dtype == torch.float64 and not label.startswith("90"):
                        continue  # float64 only where the rotation is a grid symmetry (rounding vs exactness)
                    size, spread = (11, 3.0) if key == "3D" else (33, 4.0)
                    errors = [centre_error(lib, g, w, args.trials, size, dtype, spread) for w in widths]
                    for kind in lib.kinds:
                        if (kind == "all fields") != (dtype == torch.float64 or len(lib.kinds) == 2):
                            continue  # float32: each kind of field; float64 (rounding only): all together
                        cells = " | ".join(f"{e[kind]:.1e}" for e in errors)
                        print(f"| {key} | {name} | {label} | {str(dtype)[6:]} | {kind} | {cells} |")


# --- main -----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="A,B,3D", help="comma-separated subset of A, B, 3D")
    parser.add_argument("--size-a", type=int, default=32)
    parser.add_argument("--size-b", type=int, default=64)
    parser.add_argument("--size-3d", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.3, help="seconds per timed repeat (sets calls/repeat)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--accuracy", action="store_true", help="also measure the equivariance errors")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-construction", action="store_true")
    parser.add_argument("--child", choices=["ours", "escnn", "basis"], help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child_construct(args)
        return
    _import_escnn()
    torch.set_num_threads(args.threads)
    if enn is None:
        print("escnn not installed: its rows are skipped (see the module docstring)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs; "
          f"load average {load_average()}")
    if not args.no_speed:
        cases = []
        for key in args.cases.split(","):
            load = load_average()
            case = build_case(key, args)
            results = benchmark_speed(case, args)
            print_speed(case, results, args, (load, load_average()))
            cases.append(case)
        print_parameters(cases)
    if not args.no_construction:
        benchmark_construction(args)
    if args.accuracy:
        benchmark_accuracy(args)
    escnn_disk_cache()
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
