"""An exponential moving average (EMA) of a model's weights, kept beside the model.

``EMAModel(model)`` holds ``model`` (trained) and ``ema`` (its average, not trained). In training
mode ``forward`` runs ``model``; evaluation should use ``ema``. ``update()`` moves the average
towards the current weights with decay ``min(decay, (1 + t) / (10 + t))`` after t updates (the
short warm-up lets early averages follow the fast initial changes). Both models and the update
count are in ``state_dict``, so checkpoints and resumes carry the average.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["EMAModel"]


class EMAModel(nn.Module):
    """``model`` and the moving average ``ema`` of its parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float = 0.99) -> None:
        super().__init__()
        if not 0 <= decay < 1:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.model = model
        self.ema = copy.deepcopy(model)
        self.ema.requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    @torch.no_grad()
    def update(self) -> None:
        """One averaging step (call after each optimizer step)."""
        t = int(self.num_updates)
        decay = min(self.decay, (1 + t) / (10 + t))
        for average, current in zip(self.ema.parameters(), self.model.parameters()):
            average.lerp_(current, 1.0 - decay)
        for average, current in zip(self.ema.buffers(), self.model.buffers()):
            average.copy_(current)
        self.num_updates += 1

    def attach(self, optimizer: torch.optim.Optimizer) -> Any:
        """Update after every ``optimizer.step()``; returns the hook handle."""
        return optimizer.register_step_post_hook(lambda *_: self.update())
