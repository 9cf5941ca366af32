"""Run under ``torchrun --nproc_per_node 2``: one Trainer step of a tiny fluid G-CNN on 2 processes.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 _distributed_worker.py OUT``.
Every process builds the same float64 model (same seed) and takes its half of 4 samples through the
production path (``setup_distributed``, ``wrap_ddp``, ``make_loader``, ``Trainer`` with a weight
average, ``cleanup``); the Trainer writes ``OUT/run/last.pt`` on rank 0, which also saves the
gradients of the step to ``OUT/grads.pt``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from equiscale.continuum.models import build_model
from equiscale.train import CheckpointHeader, Trainer, TrainerConfig, cleanup, make_loader, setup_distributed, wrap_ddp

SAMPLES, SIZE = 4, 8


def model_and_data() -> tuple[torch.nn.Module, TensorDataset]:
    """The tiny float64 model and the 4 (vorticity, next vorticity) pairs, the same on every process."""
    torch.manual_seed(0)
    model = build_model("gcnn", group="C4", width=2, blocks=1, kernel_size=3).double()
    fields = torch.randn(SAMPLES, 2, SIZE, SIZE, dtype=torch.float64)
    return model, TensorDataset(fields[:, 0], fields[:, 1])


def step(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean squared error of one step (a mean over the batch, so equal halves average to the whole)."""
    now, later = batch
    return (model(now) - later).square().mean(), {}


def trainer(model: torch.nn.Module, loader, out: Path) -> Trainer:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    config = TrainerConfig(max_epochs=1, ema_decay=0.9, progress_bars=False, log_epochs=False)
    return Trainer(model, optimizer, step, loader, out, config, header=CheckpointHeader("fluid"))


def budget(out: str) -> None:
    """A time budget with unequal clocks: rank 1 is slower per step; both must stop at the same step."""
    import time

    rank, world, device = setup_distributed("cpu")
    model, dataset = model_and_data()
    ddp = wrap_ddp(model, device)
    loader = make_loader(dataset, batch_size=1, shuffle=False)

    def slow_step(module, batch):
        if rank == 1:
            time.sleep(0.02)  # rank 1's clock runs out first
        return step(module, batch)

    config = TrainerConfig(max_epochs=None, max_time=0.2, progress_bars=False, log_epochs=False)
    try:
        summary = Trainer(ddp, torch.optim.SGD(model.parameters(), lr=0.01), slow_step, loader, Path(out) / "run",
                          config, header=CheckpointHeader("fluid")).fit()
        torch.save({"steps": summary["steps"], "reason": summary["stop_reason"]}, Path(out) / f"budget-{rank}.pt")
    finally:
        cleanup()


def main(out: str) -> None:
    rank, world, device = setup_distributed("cpu")
    model, dataset = model_and_data()
    ddp = wrap_ddp(model, device)
    loader = make_loader(dataset, batch_size=SAMPLES // world, shuffle=False)
    try:
        summary = trainer(ddp, loader, Path(out) / "run").fit()
        if rank == 0:
            torch.save({"world": world, "steps": summary["steps"], "loss": summary["history"][-1]["loss"],
                        "grads": {n: p.grad for n, p in model.named_parameters()}}, Path(out) / "grads.pt")
    finally:
        cleanup()


if __name__ == "__main__":
    (budget if sys.argv[2:] == ["budget"] else main)(sys.argv[1])
