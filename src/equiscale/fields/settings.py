"""The settings of ``equiscale train velocity`` and ``equiscale train efield``: one dataclass each.

The command-line options, the YAML ``--config`` file and the validation are derived from these
dataclasses by :mod:`equiscale.settings`. They choose among the demonstrations' presets
(:data:`~equiscale.fields.velocity.VELOCITY_FULL` or ``VELOCITY_QUICK`` with ``--quick``) and
override what is given: an unset budget, epoch limit or size keeps the preset's value. Light: no
torch at import, so ``equiscale --help`` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from equiscale.settings import TrainingSettings, positive, setting

__all__ = ["TrainVelocity", "TrainEfield"]

_BUDGET_HELP = "training budget per model in seconds, of this process's CPU time unless --clock wall"


@dataclass
class _FieldTraining(TrainingSettings):
    """What both demonstrations' train commands share: several models in one output folder."""

    default_epochs: ClassVar[int] = 1_000_000  # the presets' limit: the budget decides

    out: str = setting(None, help="output directory: report.md, figures, one run folder per model", required=True,
                       metavar="DIR")
    epochs: int | None = setting(None, help="maximum epochs per model", check=positive,
                                 default_text="until --max-time; --quick 2")
    max_time: float | None = setting(None, help=_BUDGET_HELP, check=positive, metavar="SECONDS",
                                     default_text="60; --quick 2")
    clock: str = setting("process", help="measure --max-time as this process's CPU time (fair on a shared machine) "
                         "or as wall-clock time", choices=("process", "wall"))
    seed: int = setting(0, help="random seed of data splits, weights and checks")
    threads: int | None = setting(1, help="torch CPU threads; these small models run best on one", check=positive,
                                  resumed=False)
    resume: bool = setting(False, help="continue the interrupted runs in --out with their saved settings (a new "
                           "--max-time or --epochs may be given; other changes are refused)", resumed=False)
    quick: bool = setting(False, help="tiny models and budgets, the same code paths (seconds)")
    figures: bool = setting(True, help="write the PNG figures beside report.md", resumed=False)

    @classmethod
    def resume_checkpoint(cls, out: str | Path) -> str:
        """The models' runs live in ``out/<model>/``; every checkpoint's header holds the command's
        settings, so ``--resume`` reads them from ``out/steerable/last.pt`` (every demonstration
        trains a model named "steerable")."""
        return str(Path(out) / "steerable" / "last.pt")


@dataclass
class TrainVelocity(_FieldTraining):
    """``equiscale train velocity``: C(8)-steerable CNN vs C(4) G-CNN vs CNN on 2D velocity, report and figures."""

    checkpoint_kind: ClassVar[str | None] = "velocity"

    data: str = setting(None, help="fluid data: vorticity [N, T + 1, R, R] (see `equiscale data fluid`); the last "
                        "N/6 trajectories are held out for the test", required=True, metavar="FILE.npz")


@dataclass
class TrainEfield(_FieldTraining):
    """``equiscale train efield``: SO(3)-steerable CNN vs plain 3D CNNs on charge density -> electric field."""

    checkpoint_kind: ClassVar[str | None] = "efield"

    samples: int | None = setting(None, help="charge densities generated (80% training, 10% validation, 10% test)",
                                  check=positive, default_text="512; --quick 12")
    resolution: int | None = setting(None, help="grid points per side", check=positive, default_text="16; --quick 8")
