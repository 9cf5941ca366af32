"""The run functions of the atomistic commands (declared in :mod:`equiscale.atomistic.app`)::

    equiscale data emt --element Cu --size 3 --frames 100 --temperature 800 --out cu.xyz
    equiscale train potential --data cu.xyz [--valid v.xyz] [--config c.yaml] [--max-time 600] [--out runs/cu] [--resume]
    equiscale evaluate potential runs/cu/best.pt --data test.xyz [--no-figures] [--json m.json]

Each takes its settings (:mod:`equiscale.atomistic.settings`) and returns the exit status; the
heavy imports happen inside.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Sequence

from equiscale.atomistic.settings import DataEMT, EvaluatePotential, TrainSettings

if TYPE_CHECKING:
    from equiscale.applications import Application

__all__ = ["data_emt", "train_potential", "evaluate_potential", "UNITS"]

UNITS = {"energy_mae": "meV", "energy_rmse": "meV", "energy_mae_per_atom": "meV/atom", "energy_rmse_per_atom": "meV/atom",
         "force_mae": "meV/A", "force_rmse": "meV/A", "stress_mae": "meV/A^3", "stress_rmse": "meV/A^3"}
"""The unit of each error metric printed by ``evaluate potential``."""


def data_emt(settings: DataEMT) -> int:
    """``equiscale data emt``: write EMT-labelled MD frames to ``settings.out``."""
    from equiscale.atomistic.emt import write_emt_dataset

    s = settings
    count = write_emt_dataset(s.out, s.element, s.size, s.frames, s.temperature, seed=s.seed, interval=s.interval,
                              show_progress=not s.quiet)
    print(f"wrote {count} frames of {4 * s.size ** 3} {s.element} atoms to {s.out}")
    return 0


def train_potential(settings: TrainSettings) -> int:
    """``equiscale train potential``: train (or, with ``resume``, continue) a potential."""
    from equiscale.atomistic.training import train_potential as train

    summary = train(settings)
    if summary.get("is_main", True):
        print(f"stopped after {summary['epochs']} epochs ({summary['stop_reason']}); best monitored loss "
              f"{summary['best']:.4g}; checkpoints in {settings.out}")
    return 0


def _potential_file(path: str, applications: Sequence[Application] | None = None) -> str:
    """The potential checkpoint of ``path`` (:func:`equiscale.check.expect_kind`)."""
    from equiscale.check import expect_kind

    return str(expect_kind(path, "potential", applications))


def evaluate_potential(settings: EvaluatePotential, applications: Sequence[Application] | None = None) -> int:
    """``equiscale evaluate potential``: print the errors, write the parity plot (and the JSON)."""
    from equiscale.atomistic.evaluate import evaluate_potential as evaluate

    checkpoint = _potential_file(settings.checkpoint, applications)
    plot = settings.replace(checkpoint=checkpoint).plot_path()
    metrics = evaluate(checkpoint, settings.data, plot=plot, batch_size=settings.batch_size, dtype=settings.dtype)
    for key, value in metrics.items():
        print(f"{key:20s} {value:12.4f} {UNITS.get(key, '')}".rstrip())
    if settings.json:
        with open(settings.json, "w") as file:
            json.dump(metrics, file, indent=1)
    if plot is not None:
        print(f"parity plot: {plot}")
    return 0
