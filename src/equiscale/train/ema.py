"""Exponential moving averages (EMA) of a model's weights.

After t updates the average moves towards the current parameters with decay
``min(decay, (1 + t) / (10 + t))``: ``average = d * average + (1 - d) * current``. The short warm-up
lets the early average follow the fast initial changes instead of remembering the random start.
Buffers (batch-norm statistics, normalisation constants) are copied, not averaged.

:class:`WeightAverage` is what the :class:`~equiscale.train.Trainer` keeps (``ema_decay``): a frozen
copy of the model holding the average, updated after each optimizer step, with a ``state_dict`` for
exact resumes.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from equiscale.train.distributed import unwrap

__all__ = ["ema_decay_at", "WeightAverage"]


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay used for the update after ``updates`` earlier ones: ``min(decay, (1 + t) / (10 + t))``."""
    return min(decay, (1 + updates) / (10 + updates))


def _check_decay(decay: float) -> float:
    if not 0 <= decay < 1:
        raise ValueError(f"ema decay must be in [0, 1), got {decay}")
    return float(decay)


@torch.no_grad()
def _average_into(average: nn.Module, current: nn.Module, decay: float) -> None:
    for mean, value in zip(average.parameters(), current.parameters()):
        mean.lerp_(value, 1.0 - decay)
    for mean, value in zip(average.buffers(), current.buffers()):
        mean.copy_(value)


class WeightAverage:
    """The moving average of ``model``'s parameters, held in a frozen copy of the model (``.module``).

    Args:
        model: the trained module (a DistributedDataParallel wrapper is unwrapped); it is copied once.
        decay: the long-run decay in [0, 1); 0.99 averages over about the last 100 steps.

    Use ``.module`` (in eval mode) to validate or predict; ``state_dict()``/``load_state_dict()``
    carry the average weights and the update count.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = _check_decay(decay)
        self.module = copy.deepcopy(unwrap(model))
        self.module.requires_grad_(False)
        self.module.eval()
        self.updates = 0

    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current parameters (call after each optimizer step)."""
        _average_into(self.module, unwrap(model), ema_decay_at(self.decay, self.updates))
        self.updates += 1

    def weights(self) -> dict[str, Any]:
        """The averaged model's ``state_dict`` (what ``state["ema"]`` of a checkpoint holds)."""
        return self.module.state_dict()

    def state_dict(self) -> dict[str, Any]:
        """``{"weights": ..., "updates": t, "decay": d}``."""
        return {"weights": self.weights(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the decay stays the one given at construction)."""
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
