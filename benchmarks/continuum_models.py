"""Training-step cost of each equivariant fluid model against its plain twin (issue 15, section 5).

For each pair (G-CNN / CNN, G-U-Net / U-Net, G-FNO / FNO) this times one training step (forward,
MSE loss, backward, Adam step) on a batch of ``--batch`` 64x64 vorticity fields, float32, in one
process, the models interleaved (the order rotating each repeat), median of ``--repeats``, CPU time
of the process (``time.process_time``: the machine is shared, so wall time would measure the load).

Three models per pair, all built by ``build_model``:

* the equivariant model at its default width (8 regular fields: ``8 |G|`` channels);
* its plain twin at **equal width**: the same number of channels in every layer (``8 |G|``), so the
  same convolution and FFT work; the ratio against it is the overhead of the regular
  representation (filter expansion, group norm, group pooling), the goal being <= 1.3;
* its plain twin at **equal parameters** (``build_model``'s default): about ``sqrt(|G|)`` times fewer
  channels, so about ``|G|`` times less work; the ratio against it is the price of equivariance
  at equal parameters (a regular representation spends ``|G|`` times the compute per parameter).

Memory: the bytes of the tensors autograd saves for the backward pass in one step (the activation
memory that sets a training run's peak beside the weights), counted with
``torch.autograd.graph.saved_tensors_hooks``, and the weights' bytes.

Run: ``python benchmarks/continuum_models.py --threads 1 2`` (``--groups C4 D4`` adds D(4);
``--quick`` for a smoke run).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from _common import load_average

from equiscale.continuum.models import build_model, count_parameters

PAIRS = (("gcnn", "cnn"), ("gunet", "unet"), ("gfno", "fno"))


def _step(model: torch.nn.Module, batch: int, size: int) -> Callable[[], None]:
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(batch, size, size, generator=generator)
    target = torch.randn(batch, size, size, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = (model(w) - target).square().mean()
        loss.backward()
        optimizer.step()

    return step


def _saved_mb(model: torch.nn.Module, batch: int, size: int) -> float:
    """MB of the tensors autograd keeps for the backward of one forward (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(torch.randn(batch, size, size)).square().mean()
    del loss
    return sum(seen.values()) / 2**20


def _weights_mb(model: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def _time_pair(models: dict[str, torch.nn.Module], batch: int, size: int, repeats: int) -> dict[str, float]:
    steps = {name: _step(m, batch, size) for name, m in models.items()}
    for step in steps.values():  # warm-up: allocator, Adam state
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.process_time()
            steps[name]()
            times[name].append(time.process_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    """Print one markdown table per thread count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--groups", nargs="+", default=["C4"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=8, help="regular fields of the equivariant models")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="batch 2, 32x32, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.repeats = 2, 32, 2
    torch.manual_seed(0)
    start = time.process_time()
    print(f"batch {args.batch}, {args.size}x{args.size}, float32, median of {args.repeats} training steps "
          f"(CPU ms of this process), load average {load_average()}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n{threads} thread(s)\n")
        print("| group | model | params | step ms | saved MB | weights MB | twin (equal width) | params | step ms "
              "| saved MB | ratio | twin (equal params) | params | step ms | ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for group in args.groups:
            order = 8 if group.upper().startswith("D") else 4
            for equivariant, plain in PAIRS:
                models = {"g": build_model(equivariant, group, width=args.width, gcnn_width=args.width),
                          "wide": build_model(plain, group, width=args.width * order, gcnn_width=args.width),
                          "matched": build_model(plain, group, gcnn_width=args.width)}
                t = _time_pair(models, args.batch, args.size, args.repeats)
                saved = {k: _saved_mb(m, args.batch, args.size) for k, m in models.items()}
                p = {k: count_parameters(m) for k, m in models.items()}
                print(f"| {group} | {equivariant} | {p['g']} | {1e3 * t['g']:.0f} | {saved['g']:.0f} | "
                      f"{_weights_mb(models['g']):.1f} | {plain} w={args.width * order} "
                      f"| {p['wide']} | {1e3 * t['wide']:.0f} | {saved['wide']:.0f} | {t['g'] / t['wide']:.2f} | "
                      f"{plain} | {p['matched']} | {1e3 * t['matched']:.0f} | {t['g'] / t['matched']:.2f} |", flush=True)
    print(f"\nbenchmark CPU time {time.process_time() - start:.0f} s, load average {load_average()}")


if __name__ == "__main__":
    main()
