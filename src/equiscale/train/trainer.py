"""One training loop for every equiscale task.

A task supplies a model, an optimizer, iterables of batches and a *step function*
``step(model, batch) -> (loss, metrics)`` (``loss`` a scalar tensor to minimise, ``metrics`` a dict
of floats to log); validation uses the same function (or ``val_step``) without gradients, unless
``validation_grad`` asks for them (e.g. forces as energy gradients). The Trainer adds the rest:

* progress: a tqdm bar per epoch with the running loss (``progress_bars``), and one line per epoch
  with all metrics (``log_epochs``), each group labelled with the weights it was measured on:
  ``train[raw]`` is the running mean over the epoch of the weights being trained, ``val[ema]`` (or
  ``val[raw]``) the validation after the epoch;
* a moving average of the weights (``ema_decay``, :class:`~equiscale.train.ema.WeightAverage`),
  updated after each optimizer step; validation, and so the choice of ``best.pt``, uses it;
* checkpoints, written atomically to ``out_dir``: ``last.pt`` after every epoch (the
  :class:`~equiscale.train.checkpoint.CheckpointHeader` given as ``header``, model, weight average,
  optimizer, scheduler, counters, random state, history, the caller's ``extra``), ``best.pt``
  whenever the monitored metric improves (header, model, average); ``history.json`` with the
  per-epoch metrics;
* ``fit(resume=True)`` continues exactly from ``last.pt`` (same data order, random draws and average);
* seeds, a time budget (training-step time, kept across resumes), early stopping, gradient clipping;
* a learning-rate schedule over the budget (``lr_schedule``, :mod:`equiscale.train.schedule`): set
  before every step from :attr:`Trainer.progress`, over epochs or over the time budget;
* several processes: under ``torch.distributed`` (e.g. a ``DistributedDataParallel`` model and a
  ``DistributedSampler``) metrics are averaged across ranks, samplers get ``set_epoch`` and only
  rank 0 writes files and prints.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import InitVar, asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from equiscale.train.checkpoint import CheckpointHeader, load_checkpoint, save_checkpoint
from equiscale.train.distributed import collective_device, is_distributed, unwrap
from equiscale.train.ema import WeightAverage
from equiscale.train.metrics import Meter, batch_size, to_device
from equiscale.train.progress import progress_bar, write_line
from equiscale.train.schedule import SCHEDULES, apply_schedule, budget_progress
from equiscale.train.seeding import rng_state, seed_everything, set_rng_state

__all__ = ["Trainer", "TrainerConfig", "StepFn", "trainer_config"]

StepFn = Callable[[nn.Module, Any], "tuple[Tensor, dict[str, float]]"]


@dataclass
class TrainerConfig:
    """Options of :class:`Trainer` (all optional).

    ``max_epochs`` None means no epoch limit: the run stops on the time budget or early stopping
    (one of ``max_epochs`` and ``max_time`` must be set). ``max_time`` (seconds) bounds the time
    spent in training steps, across resumes; ``patience`` stops after that many epochs without the
    monitored metric (``monitor``, a validation metric, or the training one without validation data)
    improving by more than ``min_delta``. ``ema_decay``: keep a moving average of the weights with
    this decay (None: none) and validate on it. ``scheduler_interval``: call ``scheduler.step()``
    every ``"epoch"`` or every ``"step"``. ``clock``: how training time is measured, ``"wall"``
    (``time.perf_counter``) or ``"process"`` (CPU time of this process, ``time.process_time``: on a
    shared CPU it counts only the compute the run received, so equal budgets stay comparable while
    other jobs run; it sums over threads). ``progress_bars`` shows a bar per epoch, ``log_epochs``
    prints one line per epoch; ``progress`` (older form) sets both. ``lr_schedule`` (``"cosine"`` or
    ``"constant"``, None: none) sets the learning rate before every step from the budget's progress
    (the larger of the epoch and time fractions, see :mod:`equiscale.train.schedule`), ending at
    ``lr_final`` times the initial rate after a linear warm-up over the first ``lr_warmup`` of the budget.
    """

    max_epochs: int | None = 100
    max_time: float | None = None
    patience: int | None = None
    monitor: str = "loss"
    min_delta: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    progress_bars: bool = True
    log_epochs: bool = True
    validation_grad: bool = False
    scheduler_interval: str = "epoch"
    clock: str = "wall"
    ema_decay: float | None = None
    lr_schedule: str | None = None
    lr_final: float = 0.01
    lr_warmup: float = 0.0
    progress: InitVar[bool | None] = None

    def __post_init__(self, progress: bool | None) -> None:
        if progress is not None:
            self.progress_bars = self.log_epochs = bool(progress)
        if self.clock not in ("wall", "process"):
            raise ValueError(f"clock must be 'wall' or 'process', got {self.clock!r}")
        if self.max_epochs is None and self.max_time is None:
            raise ValueError("set max_epochs or max_time (or both): without either the training would never stop")
        if self.max_epochs is not None and self.max_epochs < 0:
            raise ValueError(f"max_epochs must be >= 0, got {self.max_epochs}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"max_time must be positive seconds, got {self.max_time}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 epoch, got {self.patience}")
        if self.scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {self.scheduler_interval!r}")
        if self.lr_schedule is not None and self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)} (or None), got {self.lr_schedule!r}")
        if not (0 <= self.lr_final <= 1 and 0 <= self.lr_warmup < 1):
            raise ValueError(f"lr_final must be in [0, 1] and lr_warmup in [0, 1), got {self.lr_final}, {self.lr_warmup}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (or None for no average), got {self.ema_decay}")


def trainer_config(settings: Any, **overrides: Any) -> TrainerConfig:
    """The :class:`TrainerConfig` of a train command's settings (an :class:`equiscale.settings.TrainingSettings`).

    Maps the fields every train command shares: the epoch limit (``settings.max_epochs``: None
    under a time budget without ``--epochs``), ``max_time``, ``clock``, ``seed``, ``ema_decay``, and
    ``--quiet`` (no progress bars; the epoch lines stay). ``overrides`` set the other options
    (``patience=``, ``grad_clip=``, ...) or replace these.
    """
    values = dict(max_epochs=settings.max_epochs, max_time=settings.max_time, clock=settings.clock,
                  seed=settings.seed, ema_decay=settings.ema_decay, progress_bars=not settings.quiet,
                  log_epochs=True)
    values.update(overrides)
    return TrainerConfig(**values)


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
        val_step: validation step (default ``step``), run in eval mode without gradients on the
            weight average when there is one (a plain module), else on ``model``.
        scheduler: optional learning-rate scheduler (``ReduceLROnPlateau`` gets the monitored value).
        device: batches are moved there (the model is not moved).
        extra: anything picklable to store in every checkpoint.
        header: the :class:`CheckpointHeader` (or its dict) written into ``last.pt`` and ``best.pt``;
            a resume then checks that ``last.pt`` is of the same kind.
        ema_decay: if given, replaces ``config.ema_decay``.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: StepFn, train_data: Iterable,
                 out_dir: str | os.PathLike, config: TrainerConfig | None = None, val_data: Iterable | None = None,
                 val_step: StepFn | None = None, scheduler: Any = None, device: torch.device | str | None = None,
                 extra: dict[str, Any] | None = None, header: CheckpointHeader | dict[str, Any] | None = None,
                 ema_decay: float | None = None) -> None:
        if scheduler is not None and config is not None and config.lr_schedule is not None:
            raise ValueError("give either a scheduler or TrainerConfig.lr_schedule, not both")
        self.model, self.optimizer, self.step_fn = model, optimizer, step
        self.train_data, self.val_data = train_data, val_data
        self.val_step = val_step or step
        self.scheduler = scheduler
        self.config = config or TrainerConfig()
        if ema_decay is not None:
            self.config = TrainerConfig(**{**asdict(self.config), "ema_decay": ema_decay})
        self.out_dir = Path(out_dir)
        self.device = None if device is None else torch.device(device)
        self.extra = dict(extra or {})
        if isinstance(header, dict):
            header = CheckpointHeader.from_dict(header)
        self.header = header
        self.average = None if self.config.ema_decay is None else WeightAverage(model, self.config.ema_decay)
        self.epoch = 0
        self.global_step = 0
        self.elapsed = 0.0
        self.best = math.inf
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        self.stop_reason = ""
        self._legend_shown = False
        self._batch = 0

    @property
    def progress(self) -> float:
        """Fraction of the budget spent, in [0, 1]: the larger of the epoch and time fractions."""
        batches = len(self.train_data) if hasattr(self.train_data, "__len__") else None
        return budget_progress(self.epoch, self._batch, batches, self.config.max_epochs, self.elapsed,
                               self.config.max_time)

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0, or the only one)."""
        return not is_distributed() or torch.distributed.get_rank() == 0

    @property
    def eval_model(self) -> nn.Module:
        """The module validation runs: the weight average when there is one, else ``model``."""
        return self.model if self.average is None else self.average.module

    # --- checkpoints --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to resume (and to use the model)."""
        state: dict[str, Any] = {} if self.header is None else {"header": self.header.as_dict()}
        state["model"] = unwrap(self.model).state_dict()
        if self.average is not None:
            state["ema"] = self.average.weights()
            state["ema_updates"] = self.average.updates
        state.update({
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch, "step": self.global_step, "elapsed": self.elapsed, "best": self.best,
            "bad_epochs": self.bad_epochs, "history": self.history, "rng": rng_state(),
            "config": asdict(self.config), "extra": self.extra,
        })
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`state` (from ``last.pt``) into the model, average, optimizer and counters."""
        if (self.average is None) != ("ema" not in state):
            kept = "kept" if "ema" in state else "did not keep"
            raise ValueError(f"{self.out_dir / 'last.pt'}: the run {kept} a weight average; resume it with the same "
                             f"ema_decay setting")
        unwrap(self.model).load_state_dict(state["model"])
        if self.average is not None:
            self.average.load_state_dict({"weights": state["ema"], "updates": state["ema_updates"]})
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
            keys = ("header", "model", "ema", "epoch", "best", "history", "extra")
            save_checkpoint(self.out_dir / "best.pt", {k: state[k] for k in keys if k in state})
        tmp = self.out_dir / ".history.json.tmp"
        tmp.write_text(json.dumps(self.history, indent=1))
        os.replace(tmp, self.out_dir / "history.json")

    def _load_last(self) -> dict[str, Any]:
        last = self.out_dir / "last.pt"
        location = self.device or "cpu"
        if self.header is None:
            return load_checkpoint(last, map_location=location, require_header=False)
        return load_checkpoint(last, kind=self.header.kind, map_location=location)

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train until ``max_epochs``, the time budget or early stopping; return a summary dict.

        ``resume=True`` continues from ``out_dir/last.pt``; without it an ``out_dir`` that already
        holds a ``last.pt`` is refused (ValueError) rather than overwritten. The summary's
        ``stop_reason`` is ``"max_epochs"``, ``"max_time"``, ``"early stopping"`` or ``"non-finite loss"``;
        ``validated_on`` says which weights the validation metrics measure (``"ema"``, ``"raw"``, or None).
        """
        if resume:
            self.restore(self._load_last())
        else:
            if (self.out_dir / "last.pt").exists():
                raise ValueError(f"{self.out_dir} already holds a training run (last.pt): resume it or choose another directory")
            seed_everything(self.config.seed)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        while True:
            if cfg.max_epochs is not None and self.epoch >= cfg.max_epochs:
                self.stop_reason = "max_epochs"
                break
            if self._out_of_time():
                self.stop_reason = "max_time"
                break
            train_metrics, cut_short = self._train_epoch()
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
            self._log(train_metrics, val_metrics, improved)
            if not math.isfinite(train_metrics.get("loss", 0.0)):
                self.stop_reason = "non-finite loss"
                break
            if cut_short:
                self.stop_reason = "max_time"
                break
            if cfg.patience is not None and self.bad_epochs >= cfg.patience:
                self.stop_reason = "early stopping"
                break
        return {"epochs": self.epoch, "steps": self.global_step, "train_time": self.elapsed, "best": self.best,
                "stop_reason": self.stop_reason, "history": self.history,
                "validated_on": None if self.val_data is None else "raw" if self.average is None else "ema"}

    def _out_of_time(self) -> bool:
        """Whether the time budget is spent; with several processes, by the slowest one's clock.

        Each process measures its own time, so the decision is shared (the maximum across processes):
        one that stopped alone would leave the others waiting in a collective for ever.
        """
        if self.config.max_time is None:
            return False
        elapsed = self.elapsed
        if is_distributed():
            shared = torch.tensor([elapsed], dtype=torch.float64, device=collective_device())
            torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
            elapsed = float(shared)
        return elapsed >= self.config.max_time

    def _train_epoch(self) -> tuple[dict[str, float], bool]:
        """One pass over ``train_data``: its running metrics, and whether the time budget cut it short."""
        model, cfg = self.model, self.config
        model.train()
        sampler = getattr(self.train_data, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        meter = Meter()
        clock = time.perf_counter if cfg.clock == "wall" else time.process_time
        total = "" if cfg.max_epochs is None else f"/{cfg.max_epochs}"
        bar = self._bar(self.train_data, f"epoch {self.epoch + 1}{total}")
        cut_short = False
        for self._batch, batch in enumerate(bar):
            start = clock()
            if cfg.lr_schedule is not None:
                apply_schedule(self.optimizer, cfg.lr_schedule, self.progress, cfg.lr_final, cfg.lr_warmup)
            batch = to_device(batch, self.device)
            loss, metrics = self.step_fn(model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if self.average is not None:
                self.average.update(model)
            if self.scheduler is not None and cfg.scheduler_interval == "step":
                self.scheduler.step()
            self.global_step += 1
            self.elapsed += clock() - start
            meter.add({"loss": float(loss.detach()), **metrics}, batch_size(batch))
            if self.global_step % 10 == 0:
                bar.set_postfix(loss=f"{meter.sums['loss'] / max(meter.count, 1):.3e}")
            if self._out_of_time():
                cut_short = True
                break
        bar.close()
        self._batch = 0
        return meter.means(), cut_short

    def _validate(self) -> dict[str, float]:
        model = self.eval_model
        model.eval()
        meter = Meter()
        with torch.set_grad_enabled(self.config.validation_grad):
            for batch in self.val_data:
                batch = to_device(batch, self.device)
                loss, metrics = self.val_step(model, batch)
                meter.add({"loss": float(loss.detach()), **metrics}, batch_size(batch))
        self.model.train()
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
        return progress_bar(data, enabled=self.config.progress_bars and self.is_main, total=total, desc=description,
                            leave=False, unit="batch", dynamic_ncols=True)

    def _log(self, train: dict[str, float], val: dict[str, float], improved: bool) -> None:
        if not (self.config.log_epochs and self.is_main):
            return
        weights = "raw" if self.average is None else "ema"
        if not self._legend_shown:  # once per fit: what the columns measure
            self._legend_shown = True
            legend = "train[raw]: running mean over the epoch, with the weights being trained"
            if self.val_data is not None:
                legend += (f"; val[{weights}]: after the epoch, with "
                           + ("the moving average of the weights" if self.average is not None else "the same weights"))
            write_line(legend + "; * marks a new best.pt")
        record = self.history[-1]
        total = "" if self.config.max_epochs is None else f"/{self.config.max_epochs}"
        parts = [f"epoch {record['epoch']}{total}", f"step {record['step']}", f"{record['time']:.0f}s",
                 f"lr {record['lr']:.1e}", "train[raw] " + _metrics_text(train)]
        if val:
            parts.append(f"val[{weights}] " + _metrics_text(val))
        write_line("  ".join(parts) + ("  *" if improved else ""))


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.3e}" for k, v in metrics.items())
