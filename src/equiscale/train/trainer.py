"""One training loop for every equiscale task.

A task supplies a model, an optimizer, iterables of batches and a *step function*
``step(model, batch) -> (loss, metrics)`` (``loss`` a scalar tensor to minimise, ``metrics`` a dict
of floats to log); validation uses the same function (or ``val_step``) without gradients, unless
``validation_grad`` asks for them (e.g. forces as energy gradients). The Trainer adds the rest:

* progress: a tqdm bar per epoch with the running loss, and one line per epoch with all metrics;
* checkpoints, written atomically to ``out_dir``: ``last.pt`` after every epoch (model, optimizer,
  scheduler, counters, random state, history, the caller's ``extra``), ``best.pt`` whenever the
  monitored validation metric improves; ``history.json`` with the per-epoch metrics;
* ``fit(resume=True)`` continues exactly from ``last.pt`` (same data order and random draws);
* seeds, a time budget (training-step time, kept across resumes), early stopping, gradient clipping;
* several processes: under ``torch.distributed`` (e.g. a ``DistributedDataParallel`` model and a
  ``DistributedSampler``) metrics are averaged across ranks, samplers get ``set_epoch`` and only
  rank 0 writes files and prints.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from equiscale.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from equiscale.train.progress import progress_bar, write_line

__all__ = ["Trainer", "TrainerConfig", "StepFn"]

StepFn = Callable[[nn.Module, Any], "tuple[Tensor, dict[str, float]]"]


@dataclass
class TrainerConfig:
    """Options of :class:`Trainer` (all optional).

    ``max_time`` (seconds) bounds the time spent in training steps, across resumes; ``patience``
    stops after that many epochs without the monitored metric (``monitor``, a validation metric,
    or the training one without validation data) improving by more than ``min_delta``.
    ``scheduler_interval``: call ``scheduler.step()`` every ``"epoch"`` or every ``"step"``.
    ``clock``: how training time is measured, ``"wall"`` (``time.perf_counter``) or ``"process"``
    (CPU time of this process, ``time.process_time``: on a shared CPU it counts only the compute
    the run received, so equal budgets stay comparable while other jobs run; it sums over threads).
    """

    max_epochs: int = 100
    max_time: float | None = None
    patience: int | None = None
    monitor: str = "loss"
    min_delta: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    progress: bool = True
    validation_grad: bool = False
    scheduler_interval: str = "epoch"
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.clock not in ("wall", "process"):
            raise ValueError(f"clock must be 'wall' or 'process', got {self.clock!r}")
        if self.max_epochs < 0:
            raise ValueError(f"max_epochs must be >= 0, got {self.max_epochs}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"max_time must be positive seconds, got {self.max_time}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 epoch, got {self.patience}")
        if self.scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {self.scheduler_interval!r}")


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel/DataParallel wrapper."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def _to_device(batch: Any, device: torch.device | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_size(batch: Any) -> int:
    """Number of samples in a batch: the leading size of its first tensor (1 if it has none)."""
    if isinstance(batch, Tensor):
        return batch.shape[0] if batch.dim() else 1
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for item in items:
        size = _batch_size(item)
        if size:
            return size
    return 1


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class _Meter:
    """Sample-weighted means of metrics (averaged across ranks when distributed)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, metrics: dict[str, float], n: int) -> None:
        self.count += n
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * n

    def means(self) -> dict[str, float]:
        keys = sorted(self.sums)
        totals = [self.sums[k] for k in keys] + [float(self.count)]
        if _distributed():
            tensor = torch.tensor(totals, dtype=torch.float64)
            torch.distributed.all_reduce(tensor)
            totals = tensor.tolist()
        count = max(totals[-1], 1.0)
        return {k: v / count for k, v in zip(keys, totals[:-1])}


class Trainer:
    """Fit ``model`` with ``optimizer`` by minimising ``step(model, batch)[0]`` over ``train_data``.

    Args:
        model: the module to train (may be wrapped in DistributedDataParallel).
        optimizer: a torch optimizer over the model's parameters.
        step: ``step(model, batch) -> (loss, metrics)``; the loss is logged as ``"loss"``.
        train_data: re-iterable batches (e.g. a DataLoader); iterated once per epoch.
        out_dir: where ``last.pt``, ``best.pt`` and ``history.json`` go.
        config: :class:`TrainerConfig`.
        val_data: batches for validation after each epoch (None: monitor the training metrics).
        val_step: validation step (default ``step``), run in ``model.eval()`` without gradients.
        scheduler: optional learning-rate scheduler (``ReduceLROnPlateau`` gets the monitored value).
        device: batches are moved there (the model is not moved).
        extra: anything picklable to store in every checkpoint (model settings, normalisation...).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: StepFn, train_data: Iterable,
                 out_dir: str | os.PathLike, config: TrainerConfig | None = None, val_data: Iterable | None = None,
                 val_step: StepFn | None = None, scheduler: Any = None, device: torch.device | str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.model, self.optimizer, self.step_fn = model, optimizer, step
        self.train_data, self.val_data = train_data, val_data
        self.val_step = val_step or step
        self.scheduler = scheduler
        self.config = config or TrainerConfig()
        self.out_dir = Path(out_dir)
        self.device = None if device is None else torch.device(device)
        self.extra = dict(extra or {})
        self.epoch = 0
        self.global_step = 0
        self.elapsed = 0.0
        self.best = math.inf
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        self.stop_reason = ""

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0, or the only one)."""
        return not _distributed() or torch.distributed.get_rank() == 0

    # --- checkpoints --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to resume (and to use the model)."""
        return {
            "model": _unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch, "step": self.global_step, "elapsed": self.elapsed, "best": self.best,
            "bad_epochs": self.bad_epochs, "history": self.history, "rng": rng_state(),
            "config": asdict(self.config), "extra": self.extra,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`state` (from ``last.pt``) into the model, optimizer and counters."""
        _unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.global_step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
        self.best, self.bad_epochs, self.history = state["best"], state["bad_epochs"], list(state["history"])
        set_rng_state(state["rng"])

    def _save(self, improved: bool) -> None:
        if not self.is_main:
            return
        state = self.state()
        save_checkpoint(self.out_dir / "last.pt", state)
        if improved:
            save_checkpoint(self.out_dir / "best.pt", {"model": state["model"], "epoch": self.epoch, "best": self.best,
                                                       "history": self.history, "extra": self.extra})
        tmp = self.out_dir / ".history.json.tmp"
        tmp.write_text(json.dumps(self.history, indent=1))
        os.replace(tmp, self.out_dir / "history.json")

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train until ``max_epochs``, the time budget or early stopping; return a summary dict.

        ``resume=True`` continues from ``out_dir/last.pt``; without it an ``out_dir`` that already
        holds a ``last.pt`` is refused (ValueError) rather than overwritten.
        """
        last = self.out_dir / "last.pt"
        if resume:
            self.restore(load_checkpoint(last, map_location=self.device or "cpu"))
        else:
            if last.exists():
                raise ValueError(f"{self.out_dir} already holds a training run (last.pt): resume it or choose another directory")
            seed_everything(self.config.seed)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        self.stop_reason = "max_epochs"
        while self.epoch < cfg.max_epochs:
            if self._out_of_time():
                self.stop_reason = "max_time"
                break
            train_metrics = self._train_epoch()
            val_metrics = self._validate() if self.val_data is not None else {}
            self.epoch += 1
            monitored = val_metrics.get(cfg.monitor, train_metrics.get(cfg.monitor, math.nan))
            improved = monitored < self.best - cfg.min_delta
            if improved:
                self.best, self.bad_epochs = monitored, 0
            else:
                self.bad_epochs += 1
            self._step_scheduler_epoch(monitored)
            record = {"epoch": self.epoch, "step": self.global_step, "time": round(self.elapsed, 3),
                      "lr": self.optimizer.param_groups[0]["lr"], **train_metrics,
                      **{f"val_{k}": v for k, v in val_metrics.items()}}
            self.history.append(record)
            self._save(improved)
            self._log(record, improved)
            if not math.isfinite(train_metrics.get("loss", 0.0)):
                self.stop_reason = "non-finite loss"
                break
            if cfg.patience is not None and self.bad_epochs >= cfg.patience:
                self.stop_reason = "early stopping"
                break
        return {"epochs": self.epoch, "steps": self.global_step, "train_time": self.elapsed, "best": self.best,
                "stop_reason": self.stop_reason, "history": self.history}

    def _out_of_time(self) -> bool:
        return self.config.max_time is not None and self.elapsed >= self.config.max_time

    def _train_epoch(self) -> dict[str, float]:
        model, cfg = self.model, self.config
        model.train()
        sampler = getattr(self.train_data, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        meter = _Meter()
        clock = time.perf_counter if cfg.clock == "wall" else time.process_time
        bar = self._bar(self.train_data, f"epoch {self.epoch + 1}/{cfg.max_epochs}")
        for batch in bar:
            start = clock()
            batch = _to_device(batch, self.device)
            loss, metrics = self.step_fn(model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if self.scheduler is not None and cfg.scheduler_interval == "step":
                self.scheduler.step()
            self.global_step += 1
            self.elapsed += clock() - start
            meter.add({"loss": float(loss.detach()), **metrics}, _batch_size(batch))
            if self.global_step % 10 == 0:
                bar.set_postfix(loss=f"{meter.sums['loss'] / max(meter.count, 1):.3e}")
            if self._out_of_time():
                break
        bar.close()
        return meter.means()

    def _validate(self) -> dict[str, float]:
        model = self.model
        model.eval()
        meter = _Meter()
        with torch.set_grad_enabled(self.config.validation_grad):
            for batch in self.val_data:
                batch = _to_device(batch, self.device)
                loss, metrics = self.val_step(model, batch)
                meter.add({"loss": float(loss.detach()), **metrics}, _batch_size(batch))
        model.train()
        return meter.means()

    def _step_scheduler_epoch(self, monitored: float) -> None:
        if self.scheduler is None or self.config.scheduler_interval != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(monitored)
        else:
            self.scheduler.step()

    def _bar(self, data: Iterable, description: str) -> Iterable:
        total = len(data) if hasattr(data, "__len__") else None
        return progress_bar(data, enabled=self.config.progress and self.is_main, total=total, desc=description,
                            leave=False, unit="batch", dynamic_ncols=True)

    def _log(self, record: dict[str, Any], improved: bool) -> None:
        if not (self.config.progress and self.is_main):
            return
        parts = [f"epoch {record['epoch']}", f"step {record['step']}", f"{record['time']:.0f}s"]
        parts += [f"{k} {v:.3e}" for k, v in record.items() if k not in ("epoch", "step", "time", "lr")]
        write_line("  ".join(parts) + ("  *" if improved else ""))
