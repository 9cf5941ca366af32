"""Learning-rate schedules over a training budget, for :class:`equiscale.train.Trainer`.

A budget-driven schedule sets the learning rate before every optimizer step from the *progress*
of the run, a number from 0 (start) to 1 (budget spent). The progress is the larger of the
fraction of the epochs done (``max_epochs``) and the fraction of the time budget spent
(``max_time``), so a run with only a time budget is scheduled over time, one with only an epoch
limit over epochs, and one with both over whichever ends it first. Unlike a plateau scheduler it
decays even when the budget allows few epochs, and it never wastes the end of a long budget at a
vanishing rate.

Schedules (``TrainerConfig.lr_schedule``):

* ``"cosine"``: ``lr = base * (final + (1 - final) * (1 + cos(pi * p)) / 2)`` after a linear
  warm-up from ``base * final`` over the first ``warmup`` of the budget (p rescaled to the rest);
* ``"constant"``: ``lr = base`` after the same warm-up.

``base`` is each parameter group's learning rate when training started (kept in the group as
``initial_lr``, so a resumed run continues the same schedule).
"""
from __future__ import annotations

import math

import torch

__all__ = ["SCHEDULES", "schedule_factor", "apply_schedule", "budget_progress"]

SCHEDULES = ("cosine", "constant")


def schedule_factor(name: str, progress: float, final: float = 0.01, warmup: float = 0.0) -> float:
    """The learning rate's multiple of its base value at ``progress`` in [0, 1].

    Args:
        name: ``"cosine"`` or ``"constant"``.
        progress: fraction of the budget spent (clipped to [0, 1]).
        final: the multiple at the end of the budget (cosine) and at the start of the warm-up.
        warmup: fraction of the budget spent rising linearly from ``final`` to 1.

    Returns:
        The factor, in ``[final, 1]``.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}: use one of {', '.join(SCHEDULES)}")
    p = min(max(float(progress), 0.0), 1.0)
    if warmup > 0 and p < warmup:
        return final + (1.0 - final) * p / warmup
    if name == "constant":
        return 1.0
    rest = (p - warmup) / (1.0 - warmup) if warmup < 1 else 1.0
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * rest))


def budget_progress(epoch: int, batch: int, batches: int | None, max_epochs: int | None, elapsed: float,
                    max_time: float | None) -> float:
    """Fraction of the budget spent: the larger of the epoch and the time fractions.

    Args:
        epoch: completed epochs.
        batch: batches done in the current epoch.
        batches: batches per epoch (None: unknown, the epoch counts only when complete).
        max_epochs: the epoch limit (None: none).
        elapsed: training time spent, in the budget's clock.
        max_time: the time budget (None: none).

    Returns:
        The progress in [0, 1].
    """
    fractions = [0.0]
    if max_epochs:
        within = batch / batches if batches else 0.0
        fractions.append((epoch + within) / max_epochs)
    if max_time:
        fractions.append(elapsed / max_time)
    return min(max(fractions), 1.0)


def apply_schedule(optimizer: torch.optim.Optimizer, name: str, progress: float, final: float = 0.01,
                   warmup: float = 0.0) -> float:
    """Set every parameter group's ``lr`` to its ``initial_lr`` times :func:`schedule_factor`; return the factor."""
    factor = schedule_factor(name, progress, final, warmup)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor
    return factor
