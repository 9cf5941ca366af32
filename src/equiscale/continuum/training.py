"""Training the fluid surrogates with the shared :class:`equiscale.train.Trainer`.

Data: the trajectories of a fluid ``.npz`` (see :mod:`.data`); the last ``validation_trajectories``
are held out for validation, and the first ``fraction`` of the rest (at least one) are trained on.
Samples are windows of ``rollout_steps + 1`` consecutive frames; the loss is the mean squared error
of the predicted increments, in units of the data's increment RMS, averaged over an autoregressive
rollout of ``rollout_steps`` (1: plain one-step pairs). ``cnn-aug`` applies a random element of the
group to every training window.

Stable rollouts: ``pushforward`` unrolls the first ``rollout_steps - 1`` steps without gradients and
trains only the last one, from the model's own prediction (Brandstetter et al. 2022); ``noise``
adds Gaussian noise (standard deviation ``noise * field_scale``) to each window's first frame;
``curriculum`` grows the unroll from 1 to ``rollout_steps`` over the first half of the budget (the
Trainer's :attr:`~equiscale.train.Trainer.progress`). The learning rate follows ``schedule`` over
the budget. ``best.pt`` and early stopping use the validation *rollout* error: the mean relative L2
error over steps ``1..H`` of rollouts started every H frames of the validation trajectories, H =
``val_rollout`` shortened to what they hold (the run's ``config.json`` states the H used and the
schedule).

Checkpoints carry the header of kind ``"fluid"``: the run's :class:`TrainFluid` settings and the
data statistics (``field_scale``, ``delta_scale``, ``resolution``, ``dt``, ``viscosity``); the
model is rebuilt from them (:func:`run_model`). Under torchrun each process trains on its share of
the windows (DistributedSampler, DistributedDataParallel; gloo on CPU, nccl on GPU); rank 0 writes
the files.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from equiscale.continuum.data import FluidData, load_fluid
from equiscale.continuum.models import build_model, count_parameters, parse_group
from equiscale.continuum.settings import TrainFluid
from equiscale.train.distributed import on_main
from equiscale.train import (CheckpointHeader, Trainer, trainer_config, cleanup, inference_weights, load_checkpoint,
                             make_loader, setup_distributed, wrap_ddp)

__all__ = ["FluidTrainConfig", "FluidWindows", "train_fluid", "split_trajectories", "transform_fields", "load_run",
           "run_model", "KIND"]

KIND = "fluid"
DIVERGED = 1e30  # the validation error of a diverged (non-finite) rollout: still ranked, still finite

FluidTrainConfig = TrainFluid
"""The settings of one training run (the same class as ``equiscale train fluid``'s settings)."""

# Settings a resumed run must keep: they fix the model, the data it sees and the order it sees it in.
FIXED = ("model", "group", "width", "blocks", "kernel_size", "modes", "fraction", "validation_trajectories", "batch_size",
         "rollout_steps", "seed", "ema_decay", "pushforward", "noise", "curriculum", "schedule", "val_rollout")


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


def _unroll_length(steps: int, progress: Any) -> int:
    """The curriculum's unroll at the Trainer's progress: 1 step at the start, ``steps`` from halfway on."""
    return min(steps, 1 + int(2 * float(progress()) * steps))


def _make_step(delta_scale: float, augment_group: Any = None, field_scale: float = 1.0, noise: float = 0.0,
               pushforward: bool = False, progress: Any = None):
    """The training step over windows ``(B, K + 1, R, R)`` (see the module docstring); ``progress``: a
    callable giving the budget's progress, for the curriculum (None: always the whole window)."""
    def step(model: torch.nn.Module, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        if augment_group is not None and model.training:
            batch = _augment(batch, augment_group)
        steps = batch.shape[1] - 1
        if progress is not None and model.training:
            steps = _unroll_length(steps, progress)
        w = batch[:, 0]
        if noise > 0 and model.training:
            w = w + noise * field_scale * torch.randn_like(w)
        first = 1
        if pushforward and steps > 1:
            with torch.no_grad():
                for _ in range(steps - 1):
                    w = model(w)
            first = steps
        loss = batch.new_zeros(())
        relative = 0.0
        for t in range(first, steps + 1):
            prediction = model(w)
            loss = loss + ((prediction - batch[:, t]) / delta_scale).square().mean()
            relative += float(_relative_l2(prediction.detach(), batch[:, t]).mean())
            w = prediction
        trained = steps + 1 - first
        return loss / trained, {"rel_l2": relative / trained, "unroll": float(steps)}

    return step


def _relative_l2(prediction: Tensor, truth: Tensor) -> Tensor:
    return (prediction - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1).clamp_min(1e-30)


def _make_val_step(delta_scale: float):
    """Validation on rollout windows ``(B, H + 1, R, R)``: ``rollout`` (mean relative L2 error over
    steps 1..H, what ``best.pt`` is chosen on), ``rollout_end`` (at step H), ``rel_l2`` (step 1); the
    loss is the one-step loss."""
    def step(model: torch.nn.Module, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        w, errors, loss = batch[:, 0], [], None
        for t in range(1, batch.shape[1]):
            w = model(w)
            if loss is None:
                loss = ((w - batch[:, 1]) / delta_scale).square().mean()
            errors.append(_relative_l2(w, batch[:, t]))
        curve = torch.stack(errors).mean(1).nan_to_num(DIVERGED, DIVERGED, DIVERGED).clamp_max(DIVERGED)
        return loss, {"rel_l2": float(curve[0]), "rollout": float(curve.mean()), "rollout_end": float(curve[-1])}

    return step


# --- what a run stores ---------------------------------------------------------------------------------------
def _model_kwargs(settings: dict[str, Any], statistics: dict[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`build_model` for a run's settings and data statistics."""
    return {"model": settings["model"], "group": settings["group"], "width": settings["width"],
            "blocks": settings["blocks"], "kernel_size": settings["kernel_size"], "modes": settings.get("modes", 12),
            "field_scale": statistics["field_scale"], "delta_scale": statistics["delta_scale"]}


def _statistics(data: FluidData, train_w: Tensor, data_path: str | os.PathLike) -> dict[str, Any]:
    field_scale = float(train_w.std())
    delta_scale = float((train_w[:, 1:] - train_w[:, :-1]).std())
    if not (field_scale > 0 and delta_scale > 0):
        raise ValueError(f"{data_path}: the training trajectories are constant in space or time; nothing to learn")
    return {"field_scale": field_scale, "delta_scale": delta_scale, "resolution": data.resolution, "dt": data.dt,
            "viscosity": data.viscosity}


def _record(header: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The run's description as ``config.json`` holds it (and :func:`load_run` returns it)."""
    settings, statistics = header["settings"], header["statistics"]
    return {"train": settings, "model": _model_kwargs(settings, statistics), "parameters": extra.get("parameters"),
            "data": settings.get("data"), "train_trajectories": extra.get("train_trajectories", []),
            "validation_trajectories": extra.get("validation_trajectories", []), "dt": statistics.get("dt"),
            "validation_horizon": extra.get("validation_horizon"), "selection": extra.get("selection"),
            "lr_schedule": extra.get("lr_schedule"),
            "viscosity": statistics.get("viscosity"), "resolution": statistics.get("resolution")}


def _check_resume(out: Path, settings: TrainFluid) -> None:
    if not (out / "last.pt").exists():
        raise FileNotFoundError(f"nothing to resume in {out}: last.pt is missing")
    saved = load_checkpoint(out / "last.pt", kind=KIND)["header"]["settings"]
    changed = [k for k in FIXED if saved.get(k) != getattr(settings, k)]
    if changed:
        raise ValueError(f"cannot resume {out} with different settings: {', '.join(changed)} "
                         f"(saved: {', '.join(f'{k}={saved.get(k)}' for k in changed)})")


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


# --- training --------------------------------------------------------------------------------------------------
def validation_horizon(settings: TrainFluid, frames: int) -> int:
    """The validation rollout's horizon H: ``val_rollout`` shortened to ``frames - 1``."""
    return max(1, min(settings.val_rollout, frames - 1))


def _loaders(train_w: Tensor, val_w: Tensor, settings: TrainFluid) -> tuple[DataLoader, DataLoader]:
    """Training windows (each process its share under torchrun) and validation rollout windows
    started every H frames (all on every rank)."""
    windows = FluidWindows(train_w, settings.rollout_steps)
    train = make_loader(windows, settings.batch_size, shuffle=True, seed=settings.seed)
    horizon = validation_horizon(settings, val_w.shape[1])
    starts = range(0, val_w.shape[1] - horizon, horizon)
    val = torch.cat([val_w[:, s:s + horizon + 1] for s in starts])
    return train, DataLoader(val, batch_size=16)


def _schedule_text(settings: TrainFluid) -> str:
    if settings.schedule == "plateau":
        return "plateau: halved after 3 epochs without a better validation rollout error"
    over = ("the time budget" if settings.max_epochs is None else
            "the epochs" if settings.max_time is None else "the epochs or the time budget, whichever ends first")
    budget = (f"{settings.max_epochs} epochs" if settings.max_time is None else
              f"{settings.max_time:g} s ({settings.clock} clock)" if settings.max_epochs is None else
              f"{settings.max_epochs} epochs / {settings.max_time:g} s ({settings.clock} clock)")
    shape = f"cosine from {settings.lr:g} to {0.01 * settings.lr:g}" if settings.schedule == "cosine" else \
        f"constant {settings.lr:g}"
    warm = f" after a linear warm-up over {settings.warmup:g} of it" if settings.warmup else ""
    return f"{shape} over {over}: {budget}{warm}"


def train_fluid(data_path: str | os.PathLike | None, out_dir: str | os.PathLike | None, config: TrainFluid,
                resume: bool = False, progress: bool = True, epoch_lines: bool | None = None,
                model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Train one surrogate on ``data_path``, writing ``config.json``, ``last.pt``, ``best.pt`` and
    ``history.json`` to ``out_dir``.

    Args:
        data_path: the fluid ``.npz`` (None: ``config.data``).
        out_dir: the run directory (None: ``config.run_dir``).
        config: the settings; ``data`` and ``out`` are stored as given here.
        resume: continue from ``out_dir/last.pt`` (the fixed settings must be the saved ones).
        progress: show progress bars.
        epoch_lines: print one line per epoch (default: as ``progress``).
        model: a module ``(B, R, R) -> (B, R, R)`` to train instead of the one ``config`` names (e.g.
            another library's, for a benchmark); its run cannot be rebuilt by :func:`load_run`, load
            its ``best.pt`` weights into the same module instead.

    Returns:
        The Trainer's summary plus ``parameters`` and ``is_main`` (whether this process is rank 0).

    Raises:
        ValueError, FileNotFoundError: unusable data or run directory, before anything is written.
    """
    data_path = data_path if data_path is not None else config.data
    if not data_path:
        raise ValueError("no training data: pass --data FILE.npz (or set 'data:' in the --config file)")
    out = Path(out_dir if out_dir is not None else config.run_dir)
    config = config.replace(data=str(data_path), out=str(out))
    data = load_fluid(data_path)
    if resume:
        _check_resume(out, config)
    elif (out / "last.pt").exists():
        raise ValueError(f"{out} already holds a training run (last.pt): pass --resume or choose another --out")
    train_ids, val_ids = split_trajectories(data.trajectories, config.validation_trajectories, config.fraction)
    w = torch.from_numpy(np.ascontiguousarray(data.vorticity))
    train_w = w[train_ids]
    statistics = _statistics(data, train_w, data_path)
    header = CheckpointHeader(KIND, config, statistics, "float32")
    external = model is not None
    model = model if external else build_model(**_model_kwargs(asdict(config), statistics))
    if config.rollout_steps > data.frames - 1:
        raise ValueError(f"--rollout-steps {config.rollout_steps} needs trajectories of more than {data.frames} frames")
    horizon = validation_horizon(config, data.frames)
    extra = {"parameters": count_parameters(model), "train_trajectories": train_ids, "validation_trajectories": val_ids,
             "validation_horizon": horizon, "selection": f"mean validation rollout error over steps 1..{horizon}",
             "lr_schedule": _schedule_text(config), "external_model": type(model).__name__ if external else None}

    rank, world, device = setup_distributed(config.device)
    try:
        if not resume:  # rank 0 writes while the others wait; a failure there stops every process
            def write_config() -> None:
                out.mkdir(parents=True, exist_ok=True)
                _write_json(out / "config.json", _record(header.as_dict(), extra))

            on_main(write_config)
        torch.manual_seed(config.seed)
        trained = wrap_ddp(model.to(device), device)
        train_loader, val_loader = _loaders(train_w, w[val_ids], config)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        plateau = config.schedule == "plateau"
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3) if plateau else None
        trainer_box: list[Trainer] = []
        step = _make_step(statistics["delta_scale"], parse_group(config.group) if config.model == "cnn-aug" else None,
                          field_scale=statistics["field_scale"], noise=config.noise, pushforward=config.pushforward,
                          progress=(lambda: trainer_box[0].progress) if config.curriculum else None)
        options = trainer_config(config, patience=config.patience, grad_clip=1.0, progress_bars=progress,
                                 log_epochs=progress if epoch_lines is None else epoch_lines, monitor="rollout",
                                 lr_schedule=None if plateau else config.schedule, lr_warmup=config.warmup)
        trainer = Trainer(trained, optimizer, step, train_loader, out, options, val_data=val_loader,
                          val_step=_make_val_step(statistics["delta_scale"]), scheduler=scheduler, device=device,
                          extra=extra, header=header)
        trainer_box.append(trainer)
        summary = trainer.fit(resume=resume)
    finally:
        cleanup()
    summary["parameters"] = extra["parameters"]
    summary["layout"] = data.layout_note
    summary["is_main"] = rank == 0
    return summary


# --- using a trained run ---------------------------------------------------------------------------------------
def run_model(state: dict[str, Any], file: str | os.PathLike = "checkpoint") -> torch.nn.Module:
    """The model of a fluid checkpoint ``state`` (its header and inference weights), in eval mode."""
    header = state["header"]
    model = build_model(**_model_kwargs(header["settings"], header["statistics"]))
    try:
        model.load_state_dict(inference_weights(state))
    except RuntimeError as error:
        raise ValueError(f"{file}: the weights do not fit the stored model settings: {error}") from error
    return model.eval()


def load_run(run_dir: str | os.PathLike, which: str = "best") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model of a run directory (``best.pt`` or ``last.pt``) in eval mode, and its record
    (``config.json``'s content plus ``best_epoch``, ``epochs``, ``steps`` and ``train_time``)."""
    file = Path(run_dir) / f"{which}.pt"
    if Path(run_dir).is_file():  # a checkpoint given directly
        file, run_dir = Path(run_dir), Path(run_dir).parent
    state = load_checkpoint(file, kind=KIND)
    model = run_model(state, file)
    record = _record(state["header"], state.get("extra") or {})
    record["best_epoch"] = state.get("epoch")
    history_path = Path(run_dir) / "history.json"
    history = json.loads(history_path.read_text()) if history_path.exists() else state.get("history") or []
    last = history[-1] if history else {}
    record["epochs"], record["steps"] = last.get("epoch", math.nan), last.get("step", math.nan)
    record["train_time"] = last.get("time", math.nan)
    return model, record
