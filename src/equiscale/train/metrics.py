"""Batches and their metrics in the training loop: moving batches to a device, counting their
samples, and sample-weighted means of metrics (summed across processes when distributed)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from equiscale.train.distributed import collective_device, is_distributed

__all__ = ["to_device", "batch_size", "count_parameters", "Meter"]


def to_device(batch: Any, device: torch.device | None) -> Any:
    """``batch`` (a tensor, or lists/tuples/dicts of them) on ``device`` (None: unchanged)."""
    if device is None:
        return batch
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters (what every run reports beside its model)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def batch_size(batch: Any) -> int:
    """Number of samples in a batch: the leading size of its first tensor (1 if it has none)."""
    if isinstance(batch, Tensor):
        return batch.shape[0] if batch.dim() else 1
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for item in items:
        size = batch_size(item)
        if size:
            return size
    return 1


class Meter:
    """Sample-weighted means of metrics (over all processes when distributed)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, metrics: dict[str, float], n: int) -> None:
        """Add one batch's metrics (each a mean over its ``n`` samples)."""
        self.count += n
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * n

    def means(self) -> dict[str, float]:
        """The means so far, keys sorted (a collective call: every process must make it)."""
        keys = sorted(self.sums)
        totals = [self.sums[k] for k in keys] + [float(self.count)]
        if is_distributed():
            tensor = torch.tensor(totals, dtype=torch.float64, device=collective_device())
            torch.distributed.all_reduce(tensor)
            totals = tensor.tolist()
        count = max(totals[-1], 1.0)
        return {k: v / count for k, v in zip(keys, totals[:-1])}
