"""``equiscale train velocity`` and ``equiscale train efield``: the run functions of :mod:`.app`.

Each takes its settings (:mod:`.settings`), picks the demonstration's preset (full, or ``--quick``),
overrides what was given, trains the models with the shared Trainer (checkpoints in
``DIR/<model>/``, ``--resume`` continues them), evaluates them, writes ``DIR/report.md`` with a
table and PNG figures beside it, and prints the table. Returns the exit status. ``--quiet`` drops
the progress bars, not the line per epoch.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from equiscale.fields.settings import TrainEfield, TrainVelocity

__all__ = ["train_velocity", "train_efield"]


def _overrides(settings: TrainVelocity | TrainEfield) -> dict[str, Any]:
    """The preset's fields that the command's settings replace (an unset budget or epoch limit keeps the preset's)."""
    changes: dict[str, Any] = {"clock": settings.clock, "ema_decay": settings.ema_decay}
    if settings.epochs is not None:
        changes["epochs"] = settings.epochs
    return changes


def _finish(result: dict[str, Any], out: str) -> int:
    table = [line for line in result["markdown"].splitlines() if line.startswith("|")]
    print("\n".join(table))
    print(f"wrote {out}/report.md and {len(result['figures'])} figures")
    return 0


def train_velocity(settings: TrainVelocity) -> int:
    """Train and compare the velocity models on ``settings.data``; write the report to ``settings.out``."""
    from equiscale.fields.velocity import VELOCITY_FULL, VELOCITY_QUICK, run_velocity_demo

    preset = replace(VELOCITY_QUICK if settings.quick else VELOCITY_FULL, **_overrides(settings))
    result = run_velocity_demo(settings.out, quick=settings.quick, seed=settings.seed, progress=not settings.quiet,
                               data=settings.data, max_time=settings.max_time, resume=settings.resume, settings=preset,
                               header_settings=settings.as_dict(), epoch_lines=True,
                               figures=settings.figures)
    return _finish(result, settings.out)


def train_efield(settings: TrainEfield) -> int:
    """Train and compare the electrostatics models; write the report to ``settings.out``."""
    from equiscale.fields.efield import EFIELD_FULL, EFIELD_QUICK, run_efield_demo

    preset = replace(EFIELD_QUICK if settings.quick else EFIELD_FULL, **_overrides(settings))
    result = run_efield_demo(settings.out, quick=settings.quick, seed=settings.seed, progress=not settings.quiet,
                             samples=settings.samples, resolution=settings.resolution, max_time=settings.max_time,
                             resume=settings.resume, settings=preset, header_settings=settings.as_dict(),
                             epoch_lines=True, figures=settings.figures)
    return _finish(result, settings.out)
