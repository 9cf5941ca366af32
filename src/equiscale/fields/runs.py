"""What the two field demonstrations share: training one model, the run folder's bookkeeping, reports.

Every model is trained with :class:`equiscale.train.Trainer` (``last.pt``/``best.pt``/``history.json``
in its own folder, ``resume``): Adam with the learning rate halved after 3 epochs without
improvement, gradients clipped at 1, the loss the MSE in units of a data scale, an optional moving
average of the weights (``ema_decay``); every checkpoint carries a header of the demonstration's
kind. ``config.json`` in the output folder records the settings and data of the runs so that
``--resume`` refuses to mix runs made with other settings.

Under torchrun (a process group joined by :func:`equiscale.train.setup_distributed`) every process
trains each model with DistributedDataParallel on its share of the batches, and only rank 0 writes
files and prints (:func:`is_main`, :func:`on_main`); with one process everything runs as before.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from equiscale.fields.models import count_parameters
from equiscale.train import (CheckpointHeader, Trainer, TrainerConfig, inference_weights, load_checkpoint, make_loader,
                             wrap_ddp, write_line)
from equiscale.train.distributed import is_distributed, is_main, on_main

__all__ = ["pair_step", "check_runs", "fit", "seeded", "markdown_table", "write_json", "is_main", "on_main"]


def pair_step(scale: float) -> Callable:
    """Step function on ``(input, target)`` batches: MSE in units of ``scale``, plus the relative L2 error."""

    def step(model: torch.nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        x, y = batch
        prediction = model(x)
        loss = ((prediction - y) / scale).square().mean()
        relative = (prediction.detach() - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1).clamp_min(1e-30)
        return loss, {"rel_l2": float(relative.mean())}

    return step


def check_runs(out: Path, names: list[str], record: dict[str, Any], resume: bool) -> None:
    """Refuse to overwrite finished runs, or to resume runs made with other settings; then write ``config.json``.

    Every process checks (and refuses alike); rank 0 alone writes, the others wait for it.
    """
    config = out / "config.json"
    existing = [name for name in names if (out / name / "last.pt").exists()]
    if resume and config.exists():
        def fixed(values: dict[str, Any]) -> dict[str, Any]:  # the budget may change when resuming
            settings = {k: v for k, v in values.get("settings", {}).items() if k not in ("max_time", "epochs")}
            return {**values, "settings": settings}

        saved, current = fixed(json.loads(config.read_text())), fixed(json.loads(json.dumps(record)))
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise ValueError(f"cannot resume {out} with different settings or data: {', '.join(changed)} differ from "
                             f"the saved {config}")
    elif existing and not resume:
        raise ValueError(f"{out} already holds training runs ({', '.join(existing)}): pass --resume to continue them "
                         f"or choose another --out")

    def write() -> None:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".config.json.tmp"
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, config)

    on_main(write)


def fit(name: str, model: torch.nn.Module, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], scale: float,
        folder: Path, settings: Any, extra: dict[str, Any], resume: bool, progress: bool,
        header: CheckpointHeader, epoch_lines: bool | None = None) -> dict[str, Any]:
    """Train ``model`` on ``(inputs, targets)`` pairs into ``folder``; load its best weights; return the summary.

    Args:
        settings: gives ``batch_size``, ``lr``, ``epochs``, ``max_time``, ``clock``, ``seed`` and
            ``ema_decay`` (a moving average of the weights, validated and kept in ``best.pt``; None: none).
        extra: stored in every checkpoint (the model's name and constructor settings).
        progress: progress bars; ``epoch_lines`` (default: as ``progress``) the line per epoch.
        header: written into every checkpoint; ``best.pt`` is read back as that kind.

    The model ends in eval mode with the weights to predict with: the best epoch's, its moving
    average when the run kept one. Under torchrun each process trains on its share of the
    training batches (``settings.batch_size`` per process) with DistributedDataParallel, validates
    on all of ``val``; rank 0 writes the checkpoints, every process then reads ``best.pt``.
    """
    epoch_lines = progress if epoch_lines is None else epoch_lines
    # one process: a shuffled DataLoader drawing from torch's global generator, as before
    train_loader = make_loader(TensorDataset(*train), settings.batch_size, shuffle=True, seed=settings.seed)
    val_loader = DataLoader(TensorDataset(*val), batch_size=32)
    trained = wrap_ddp(model, "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    config = TrainerConfig(max_epochs=settings.epochs, max_time=settings.max_time, seed=settings.seed,
                           progress_bars=progress, log_epochs=epoch_lines, grad_clip=1.0, clock=settings.clock,
                           ema_decay=settings.ema_decay)
    if epoch_lines and is_main():
        write_line(f"training {name}: {count_parameters(model)} parameters, {settings.max_time:g} s "
                   f"({settings.clock} clock)")
    trainer = Trainer(trained, optimizer, pair_step(scale), train_loader, folder, config, val_data=val_loader,
                      scheduler=scheduler, extra={**extra, "name": name}, header=header)
    summary = trainer.fit(resume=resume and (folder / "last.pt").exists())
    if is_distributed():
        torch.distributed.barrier()  # rank 0 has written the last checkpoints
    if (folder / "best.pt").exists():
        model.load_state_dict(inference_weights(load_checkpoint(folder / "best.pt", kind=header.kind)))
    model.eval()
    return summary


def seeded(seed: int, cls: Callable[..., torch.nn.Module], settings: dict[str, Any]) -> torch.nn.Module:
    """``cls(**settings)`` built right after ``torch.manual_seed(seed)`` (every model starts from the same seed)."""
    torch.manual_seed(seed)
    return cls(**settings)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table of strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (numpy scalars as floats)."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float))
    os.replace(tmp, path)
