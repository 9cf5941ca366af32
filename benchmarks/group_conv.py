"""Group convolution speed and accuracy: equiscale's GroupConv2d against a plain Conv2d and escnn's R2Conv.

Setup (issue 4): C(4), 16 -> 16 regular fields (64 channels), kernel 5, padding 2, batch 8, 64x64,
float32. Timed in one process, interleaved (the order rotating each repeat), median and minimum of --repeats:

* train: ``module.train()``, forward with gradients, and forward + backward (weights and input);
* eval: ``module.eval()``, forward under ``torch.no_grad()`` (the cached filter), and forward +
  backward to the input with frozen weights.

Floor: the dense convolution does ``2 B H W C_in C_out k^2`` = 6.7 GFLOP forward (x3 with backward).

Accuracy (``--accuracy``): equivariance error at 45 degrees of a C(8) lifting convolution (1 -> 8
regular fields, kernel 5) on smooth fields (Gaussian blobs, rotated analytically), at the rotation
centre, ours (steerable basis) and escnn's; and the error at 90 degrees (exact for both up to rounding).

escnn cannot share equiscale's environment (lie-learn-escience pins numpy < 2): run this from a
second venv holding torch, escnn and equiscale (editable), e.g. ``.venv-escnn/bin/python
benchmarks/group_conv.py``; without escnn its rows are skipped.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Callable

import torch
from _common import gaussian_blobs, load_average, plane_points

from equiscale.groups import C
from equiscale.nn.grids import GroupConv2d, LiftingConv2d

try:
    from escnn import gspaces
    from escnn import nn as enn
except ImportError:  # pragma: no cover - depends on the environment
    enn = None


def _escnn_conv(n: int, fields_in: int, fields_out: int, kernel: int, padding: int, lifting: bool = False):
    space = gspaces.rot2dOnR2(N=n)
    rep_in = [space.trivial_repr] * fields_in if lifting else [space.regular_repr] * fields_in
    return enn.R2Conv(enn.FieldType(space, rep_in), enn.FieldType(space, [space.regular_repr] * fields_out),
                      kernel_size=kernel, padding=padding)


def _time(fn: Callable[[], None], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def _cases(args: argparse.Namespace) -> dict[str, tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]]:
    g = C(4)
    channels = args.fields * g.order
    ours = GroupConv2d(args.fields, args.fields, args.kernel, g, padding=args.kernel // 2)
    plain = torch.nn.Conv2d(channels, channels, args.kernel, padding=args.kernel // 2)
    cases = {
        "equiscale GroupConv2d": (ours, lambda x: ours(x.view(x.shape[0], args.fields, g.order, *x.shape[-2:]))),
        "torch Conv2d": (plain, plain),
    }
    if enn is not None:
        theirs = _escnn_conv(4, args.fields, args.fields, args.kernel, args.kernel // 2)
        field_type = theirs.in_type
        cases["escnn R2Conv"] = (theirs, lambda x: theirs(enn.GeometricTensor(x, field_type)).tensor)
    return cases


def benchmark_speed(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    cases = _cases(args)
    channels = args.fields * 4
    x = torch.randn(args.batch, channels, args.size, args.size)
    flop = 2 * args.batch * args.size**2 * channels**2 * args.kernel**2
    results: dict[tuple[str, str], list[float]] = {}

    def run(mode: str, name: str, module: torch.nn.Module, call) -> float:
        if mode.startswith("train"):
            module.train()
            for p in module.parameters():
                p.requires_grad_(True)
            if mode == "train forward":
                return _time(lambda: call(x), args.iterations)
            xg = x.clone().requires_grad_()
            return _time(lambda: call(xg).sum().backward(), args.iterations)
        with torch.no_grad():  # escnn expands its cached filter in .eval(): keep autograd out of it
            module.eval()
        if mode == "eval forward":
            with torch.no_grad():
                call(x)  # fill caches
                return _time(lambda: call(x), args.iterations)
        for p in module.parameters():
            p.requires_grad_(False)
        xg = x.clone().requires_grad_()
        call(xg)
        return _time(lambda: call(xg).sum().backward(), args.iterations)

    modes = ["train forward", "train forward+backward", "eval forward", "eval forward+backward (input)"]
    names = list(cases)
    for mode in modes:
        for name, (module, call) in cases.items():  # warm-up
            run(mode, name, module, call)
        for rep in range(args.repeats):  # interleaved, the order rotating every repeat
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                module, call = cases[name]
                results.setdefault((mode, name), []).append(run(mode, name, module, call))

    print(f"\nC(4), {args.fields} -> {args.fields} regular fields ({channels} channels), kernel {args.kernel}, "
          f"batch {args.batch}, {args.size}x{args.size}, float32, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats of {args.iterations} calls; load average {load_average()}")
    print(f"dense conv forward: {flop / 1e9:.2f} GFLOP\n")
    print("| mode | implementation | median (ms) | min (ms) | median vs Conv2d | min vs Conv2d | min vs escnn | GFLOP/s (min) |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in modes:
        plain = results[(mode, "torch Conv2d")]
        escnn = results.get((mode, "escnn R2Conv"), [math.nan])
        work = flop * (1 if "forward+" not in mode else (3 if mode.startswith("train") else 2))
        for name in cases:
            t = results[(mode, name)]
            print(f"| {mode} | {name} | {statistics.median(t) * 1e3:.1f} | {min(t) * 1e3:.1f} | "
                  f"{statistics.median(t) / statistics.median(plain):.2f}x | {min(t) / min(plain):.2f}x | "
                  f"{min(t) / min(escnn):.2f}x | {work / min(t) / 1e9:.0f} |")


def centre_error(call, n: int, steps: int, width: float, trials: int, size: int = 33, direction: int = 1) -> float:
    """max over trials of |out(R w)(0) - shift(out(w)(0))| / max|out(w)|, R the rotation by 2 pi steps / n.

    ``direction=-1`` for a library whose group axis turns the other way (escnn: its rotations are
    clockwise in our (x, y) grid convention, in which y grows with the row index).
    """
    generator = torch.Generator().manual_seed(0)
    angle = 2 * math.pi * steps / n
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    worst = 0.0
    with torch.no_grad():
        for _ in range(trials):
            centres = torch.randn(6, 2, dtype=torch.float64, generator=generator) * 4
            amplitudes = torch.randn(6, dtype=torch.float64, generator=generator)
            points = plane_points(size)
            y = call(gaussian_blobs(points, centres, amplitudes, width))  # (1, C, n, H, W)
            moved = call(gaussian_blobs(points, centres @ rotation.T, amplitudes, width))
            c = size // 2
            expected = torch.roll(y[..., c, c], direction * steps, dims=2)
            worst = max(worst, float((moved[..., c, c] - expected).abs().max() / y.abs().max()))
    return worst


def benchmark_accuracy(args: argparse.Namespace) -> None:
    n, fields = 8, 8
    torch.manual_seed(1)
    ours = LiftingConv2d(1, fields, 5, C(n), padding=2, dtype=torch.float64)
    calls = {"equiscale LiftingConv2d (basis)": (lambda w: ours(w), 1)}
    if enn is not None:
        theirs = _escnn_conv(n, 1, fields, 5, 2, lifting=True).double().eval()
        calls["escnn R2Conv"] = (lambda w: theirs(enn.GeometricTensor(w, theirs.in_type)).tensor.view(1, fields, n, *w.shape[-2:]), -1)
    print(f"\nC({n}) lifting convolution, 1 -> {fields} regular fields, kernel 5, float64; error at the rotation centre, "
          f"relative to max|output|, worst of {args.trials} random fields of 6 Gaussian blobs")
    print("\n| implementation | blob width (px) | 45 degrees | 90 degrees |")
    print("|---|---|---|---|")
    for name, (call, direction) in calls.items():
        for width in (1.0, 2.0, 3.0):
            e45 = centre_error(call, n, 1, width, args.trials, direction=direction)
            e90 = centre_error(call, n, 2, width, args.trials, direction=direction)
            print(f"| {name} | {width:g} | {e45:.2e} | {e90:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", type=int, default=16)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--accuracy", action="store_true", help="also measure the 45-degree error of C(8)")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if enn is None:
        print("escnn not installed: its rows are skipped (see the module docstring)")
    if not args.no_speed:
        benchmark_speed(args)
    if args.accuracy:
        benchmark_accuracy(args)


if __name__ == "__main__":
    main()
