"""Training the fluid surrogates with the shared :class:`equiscale.train.Trainer`.

Data: the trajectories of a fluid ``.npz`` (see :mod:`.data`); the last ``validation_trajectories``
are held out for validation (early stopping, ``best.pt``), and the first ``fraction`` of the rest
(at least one) are trained on. Samples are windows of ``rollout_steps + 1`` consecutive frames; the
loss is the mean squared error of the predicted increments, in units of the data's increment RMS,
averaged over an autoregressive rollout of ``rollout_steps`` (1: plain one-step pairs).
``cnn-aug`` applies a random element of the group to every training window.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from equiscale.continuum.data import load_fluid
from equiscale.continuum.models import build_model, count_parameters, parse_group
from equiscale.train import Trainer, TrainerConfig

__all__ = ["FluidTrainConfig", "FluidWindows", "train_fluid", "split_trajectories", "transform_fields", "load_run"]


@dataclass
class FluidTrainConfig:
    """Settings of one training run (saved with it)."""

    model: str = "gcnn"
    group: str = "C4"
    width: int | None = None
    blocks: int = 2
    kernel_size: int = 5
    fraction: float = 1.0
    validation_trajectories: int = 4
    epochs: int = 1000
    max_time: float | None = None
    batch_size: int = 16
    lr: float = 2e-3
    patience: int | None = None
    seed: int = 0
    rollout_steps: int = 1
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.model not in ("gcnn", "cnn", "cnn-aug"):
            raise ValueError(f"model must be gcnn, cnn or cnn-aug, got {self.model!r}")
        parse_group(self.group)
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")


class FluidWindows(Dataset):
    """Windows ``(steps + 1, R, R)`` of consecutive frames from trajectories ``[N, T + 1, R, R]``."""

    def __init__(self, vorticity: Tensor, steps: int = 1) -> None:
        if vorticity.shape[1] < steps + 1:
            raise ValueError(f"trajectories of {vorticity.shape[1]} frames are too short for {steps}-step windows")
        self.vorticity, self.steps = vorticity, steps
        self.per_trajectory = vorticity.shape[1] - steps

    def __len__(self) -> int:
        return self.vorticity.shape[0] * self.per_trajectory

    def __getitem__(self, index: int) -> Tensor:
        trajectory, start = divmod(index, self.per_trajectory)
        return self.vorticity[trajectory, start:start + self.steps + 1]


def split_trajectories(count: int, validation: int, fraction: float) -> tuple[list[int], list[int]]:
    """``(train, validation)`` trajectory indices: the last ``validation`` held out, then the first
    ``max(1, round(fraction * rest))`` of the rest."""
    if count < 2:
        raise ValueError(f"need at least 2 trajectories (training and validation), the file has {count}")
    validation = min(validation, count - 1)
    rest = count - validation
    used = max(1, int(round(fraction * rest)))
    return list(range(used)), list(range(rest, count))


def transform_fields(w: Tensor, group: Any, g: int) -> Tensor:
    """Act on vorticity ``[..., H, W]`` by element ``g`` of C(4)/D(4): rotate, reflect with a sign flip."""
    k, flip = g % group.n, g // group.n
    if flip:
        w = -w.flip(-2)
    return torch.rot90(w, k * 4 // group.n, dims=(-1, -2))


def _augment(batch: Tensor, group: Any) -> Tensor:
    elements = torch.randint(group.order, (batch.shape[0],)).tolist()
    return torch.stack([transform_fields(w, group, g) for w, g in zip(batch, elements)])


def _make_step(delta_scale: float, augment_group: Any = None):
    def step(model: torch.nn.Module, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        if augment_group is not None and model.training:
            batch = _augment(batch, augment_group)
        w = batch[:, 0]
        loss = batch.new_zeros(())
        relative = 0.0
        for t in range(1, batch.shape[1]):
            prediction = model(w)
            loss = loss + ((prediction - batch[:, t]) / delta_scale).square().mean()
            relative += float(((prediction.detach() - batch[:, t]).flatten(1).norm(dim=1)
                               / batch[:, t].flatten(1).norm(dim=1)).mean())
            w = prediction
        steps = batch.shape[1] - 1
        return loss / steps, {"rel_l2": relative / steps}

    return step


def _check_resume(out: Path, config: FluidTrainConfig) -> None:
    saved = json.loads((out / "config.json").read_text())["train"]
    fixed = ("model", "group", "width", "blocks", "kernel_size", "fraction", "validation_trajectories",
             "batch_size", "rollout_steps", "seed")
    changed = [k for k in fixed if saved.get(k) != getattr(config, k)]
    if changed:
        raise ValueError(f"cannot resume {out} with different settings: {', '.join(changed)} "
                         f"(saved: {', '.join(f'{k}={saved.get(k)}' for k in changed)})")


def train_fluid(data_path: str | os.PathLike, out_dir: str | os.PathLike, config: FluidTrainConfig,
                resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one surrogate on ``data_path``, writing ``config.json``, ``last.pt``, ``best.pt`` and
    ``history.json`` to ``out_dir``; returns the Trainer's summary plus ``parameters``."""
    data = load_fluid(data_path)
    out = Path(out_dir)
    if resume:
        if not (out / "config.json").exists():
            raise FileNotFoundError(f"nothing to resume in {out}: config.json is missing")
        _check_resume(out, config)
    train_ids, val_ids = split_trajectories(data.trajectories, config.validation_trajectories, config.fraction)
    w = torch.from_numpy(np.ascontiguousarray(data.vorticity))
    train_w = w[train_ids]
    field_scale = float(train_w.std())
    delta_scale = float((train_w[:, 1:] - train_w[:, :-1]).std())
    if not (field_scale > 0 and delta_scale > 0):
        raise ValueError(f"{data_path}: the training trajectories are constant in space or time; nothing to learn")
    group = parse_group(config.group)
    settings = {"model": config.model, "group": config.group, "width": config.width, "blocks": config.blocks,
                "kernel_size": config.kernel_size, "field_scale": field_scale, "delta_scale": delta_scale}
    model = build_model(**settings)
    parameters = count_parameters(model)
    record = {"train": asdict(config), "model": settings, "parameters": parameters, "data": str(data_path),
              "train_trajectories": train_ids, "validation_trajectories": val_ids, "dt": data.dt,
              "viscosity": data.viscosity, "resolution": data.resolution}
    if not resume:
        if (out / "last.pt").exists():
            raise ValueError(f"{out} already holds a training run (last.pt): pass --resume or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".config.json.tmp"
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, out / "config.json")
    torch.manual_seed(config.seed)
    train_loader = DataLoader(FluidWindows(train_w, config.rollout_steps), batch_size=config.batch_size, shuffle=True,
                              drop_last=False)
    val_loader = DataLoader(FluidWindows(w[val_ids], 1), batch_size=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    step = _make_step(delta_scale, group if config.model == "cnn-aug" else None)
    trainer_config = TrainerConfig(max_epochs=config.epochs, max_time=config.max_time, patience=config.patience,
                                   seed=config.seed, progress=progress, grad_clip=1.0,
                                   clock=config.clock)
    trainer = Trainer(model, optimizer, step, train_loader, out, trainer_config, val_data=val_loader,
                      val_step=_make_step(delta_scale), scheduler=scheduler, extra={"settings": settings, "record": record})
    summary = trainer.fit(resume=resume)
    summary["parameters"] = parameters
    return summary


def load_run(run_dir: str | os.PathLike, which: str = "best") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model of a run directory (``best.pt`` or ``last.pt``) in eval mode, and its record."""
    from equiscale.train import load_checkpoint

    state = load_checkpoint(Path(run_dir) / f"{which}.pt")
    if "extra" not in state or "settings" not in state["extra"]:
        raise ValueError(f"{run_dir}/{which}.pt was not written by `equiscale train fluid`")
    model = build_model(**state["extra"]["settings"])
    model.load_state_dict(state["model"])
    model.eval()
    record = dict(state["extra"]["record"])
    record["best_epoch"] = state.get("epoch")
    history_path = Path(run_dir) / "history.json"
    history = json.loads(history_path.read_text()) if history_path.exists() else state.get("history") or []
    last = history[-1] if history else {}
    record["epochs"], record["steps"] = last.get("epoch", math.nan), last.get("step", math.nan)
    record["train_time"] = last.get("time", math.nan)
    return model, record
