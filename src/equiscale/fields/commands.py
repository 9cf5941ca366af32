"""``equiscale train velocity`` and ``equiscale train efield``: the run functions of :mod:`.app`.

Each takes its settings (:mod:`.settings`), picks the demonstration's preset (full, or ``--quick``),
overrides what was given, trains the models with the shared Trainer (checkpoints in
``DIR/<model>/``, ``--resume`` continues them), evaluates them, writes ``DIR/report.md`` with a
table and PNG figures beside it, and prints the table. Returns the exit status. ``--quiet`` drops
the progress bars, not the line per epoch.

Under ``torchrun --nproc_per_node K -m equiscale.cli train efield ...`` each command joins the
process group (gloo; these models train on the CPU), trains every model with
DistributedDataParallel on its share of the batches, and leaves the group at the end; rank 0
alone writes files and prints.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from equiscale.fields.settings import TrainEfield, TrainVelocity

__all__ = ["train_velocity", "train_efield"]


def _overrides(settings: TrainVelocity | TrainEfield) -> dict[str, Any]:
    """The preset's fields that the command's settings replace: a budget given without --epochs trains
    until the budget (no epoch limit); with neither, the preset's limits stay."""
    changes: dict[str, Any] = {"clock": settings.clock, "ema_decay": settings.ema_decay}
    if settings.epochs is not None or settings.max_time is not None:
        changes["epochs"] = settings.epochs
    return changes


def _run(demo: Callable[[], dict[str, Any] | None], out: str) -> int:
    """Run ``demo`` in the process group torchrun describes (alone without one); rank 0 prints the table."""
    from equiscale.train import cleanup, setup_distributed

    rank, _, _ = setup_distributed("cpu")
    try:
        result = demo()
    finally:
        cleanup()
    if rank == 0 and result is not None:
        table = [line for line in result["markdown"].splitlines() if line.startswith("|")]
        print("\n".join(table))
        print(f"wrote {out}/report.md and {len(result['figures'])} figures")
    return 0


def train_velocity(settings: TrainVelocity) -> int:
    """Train and compare the velocity models on ``settings.data``; write the report to ``settings.out``."""
    from equiscale.fields.velocity import VELOCITY_FULL, VELOCITY_QUICK, run_velocity_demo

    preset = replace(VELOCITY_QUICK if settings.quick else VELOCITY_FULL, **_overrides(settings))
    return _run(lambda: run_velocity_demo(settings.out, quick=settings.quick, seed=settings.seed,
                                          progress=not settings.quiet, data=settings.data, max_time=settings.max_time,
                                          resume=settings.resume, settings=preset, header_settings=settings.as_dict(),
                                          epoch_lines=True, figures=settings.figures), settings.out)


def train_efield(settings: TrainEfield) -> int:
    """Train and compare the electrostatics models; write the report to ``settings.out``."""
    from equiscale.fields.efield import EFIELD_FULL, EFIELD_QUICK, run_efield_demo

    preset = replace(EFIELD_QUICK if settings.quick else EFIELD_FULL, **_overrides(settings))
    return _run(lambda: run_efield_demo(settings.out, quick=settings.quick, seed=settings.seed,
                                        progress=not settings.quiet, samples=settings.samples,
                                        resolution=settings.resolution, max_time=settings.max_time,
                                        resume=settings.resume, settings=preset, header_settings=settings.as_dict(),
                                        epoch_lines=True, figures=settings.figures), settings.out)
