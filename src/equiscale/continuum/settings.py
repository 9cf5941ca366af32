"""The settings of ``equiscale data fluid``, ``train fluid`` and ``evaluate fluid``: one dataclass each.

The command-line options, the YAML ``--config`` file and the validation of values are derived from
these dataclasses by :mod:`equiscale.settings`; a field added here appears everywhere. Light: no
torch at import, so ``equiscale --help`` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from equiscale.settings import Settings, TrainingSettings, at_least, fraction, positive, setting

__all__ = ["DataFluid", "TrainFluid", "EvaluateFluid", "MODELS", "GROUPS"]

MODELS = ("gunet", "unet", "gfno", "fno", "gcnn", "cnn", "cnn-aug")
GROUPS = ("C4", "D4")

THREADS_HELP = "torch CPU threads; 1 is fastest on a busy machine"
SHIFTS = ("viscosity", "rollout")  # the out-of-distribution shifts of `evaluate fluid` (continuum.uncertainty)


def _shift_names(value: Any) -> str | None:
    unknown = [v for v in ([value] if isinstance(value, str) else value) if v not in SHIFTS]  # an option or the list
    return f"must name shifts among {', '.join(SHIFTS)}" if unknown else None


@dataclass
class DataFluid(Settings):
    """``equiscale data fluid``: simulate decaying 2D turbulence into an ``.npz`` file."""

    out: str = setting(None, help="output .npz file", required=True, metavar="FILE.npz")
    trajectories: int = setting(32, help="number of trajectories N", check=positive)
    steps: int = setting(50, help="saved steps T after the initial frame", check=positive)
    resolution: int = setting(64, help="grid points per side R", check=at_least(8))
    viscosity: float = setting(5e-3, help="kinematic viscosity", check=positive)
    dt: float = setting(0.2, help="time between saved frames", check=positive)
    seed: int = setting(0, help="random seed")
    quiet: bool = setting(False, help="no progress bar")
    threads: int | None = setting(None, help=THREADS_HELP, check=positive, default_text="torch's choice")


@dataclass
class TrainFluid(TrainingSettings):
    """``equiscale train fluid``: one training run of a fluid surrogate (saved in its checkpoints).

    ``data`` and ``out`` may stay unset when :func:`equiscale.continuum.training.train_fluid` is
    given them as arguments; the command needs ``data`` and takes ``out`` from :attr:`run_dir`.
    ``epochs`` left unset means 1000, or "until ``max_time``" when a time budget is given.
    """

    default_epochs: ClassVar[int] = 1000
    checkpoint_kind: ClassVar[str | None] = "fluid"

    data: str | None = setting(None, help="fluid .npz (see `equiscale data fluid`); required here or in --config",
                               metavar="FILE.npz", default_text="none")
    out: str | None = setting(None, help="run directory", metavar="DIR", default_text="runs/fluid-MODEL")
    model: str = setting("gcnn", help="which surrogate: group-equivariant U-Net / its plain twin, group-equivariant "
                         "Fourier neural operator / its plain twin, the small residual C(4)/D(4) G-CNN, the plain CNN, "
                         "or the CNN trained on randomly rotated data", choices=MODELS)
    group: str = setting("C4", help="group of the equivariant models / the augmentation group", choices=GROUPS)
    width: int | None = setting(None, help="channels (equivariant models: regular fields, 8 when unset); a plain "
                                "twin by default matches its equivariant twin's parameters", check=positive,
                                default_text="matched")
    blocks: int | None = setting(None, help="residual blocks (gcnn/cnn), blocks per level (U-Nets) or Fourier layers "
                                 "(FNOs)", check=positive, default_text="2 / 1 / 4")
    kernel_size: int | None = setting(None, help="odd convolution kernel size (unused by the FNOs)", check=positive,
                                      default_text="5 (gcnn/cnn), 3 (U-Nets)")
    modes: int = setting(12, help="Fourier modes per axis of the FNOs (the grid needs at least 2 modes + 2 points)",
                         check=positive)
    fraction: float = setting(1.0, help="fraction of the training trajectories used", check=fraction)
    validation_trajectories: int = setting(4, help="held-out trajectories at the end of the file", check=positive)
    batch_size: int = setting(16, help="batch size", check=positive)
    lr: float = setting(2e-3, help="Adam learning rate (the start of the --schedule)", check=positive)
    schedule: str = setting("cosine", help="learning-rate schedule: cosine from --lr to 1% of it over the budget "
                            "(over --epochs, or over --max-time when only a time budget is given, or whichever ends "
                            "first), constant, or plateau (halve after 3 epochs without a better validation)",
                            choices=("cosine", "constant", "plateau"))
    warmup: float = setting(0.0, help="fraction of the budget over which the learning rate rises linearly to --lr "
                            "(cosine and constant schedules)", check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)")
    patience: int | None = setting(None, help="early stopping after this many epochs without improvement",
                                   check=positive, default_text="none")
    rollout_steps: int = setting(1, help="train on rollouts of this many steps (1: one-step pairs)", check=positive)
    pushforward: bool = setting(False, help="pushforward trick: unroll --rollout-steps - 1 steps without gradients "
                                "and train only the last step, on the model's own prediction as input")
    noise: float = setting(0.0, help="training noise: add Gaussian noise of this standard deviation, relative to the "
                           "field's scale (its standard deviation over the training data), to each window's input",
                           check=lambda v: None if v >= 0 else "must be >= 0")
    curriculum: bool = setting(False, help="grow the training unroll from 1 step to --rollout-steps linearly over the "
                               "first half of the budget")
    val_rollout: int = setting(25, help="best.pt and --patience use the mean relative L2 error over steps 1..H of "
                               "rollouts from the validation trajectories, H this horizon (shortened to what the "
                               "trajectories hold)", check=positive, metavar="H")
    device: str = setting("cpu", help="where to train (auto: cuda if available; under torchrun each process takes "
                          "the GPU of its LOCAL_RANK)", choices=("cpu", "cuda", "auto"))

    @property
    def run_dir(self) -> str:
        """``out``, or ``runs/fluid-MODEL`` when it is unset."""
        return self.out or f"runs/fluid-{self.model}"


@dataclass
class EvaluateFluid(Settings):
    """``equiscale evaluate fluid``: errors, equivariance and figures of trained fluid runs."""

    runs: list[str] = setting(None, help="run directories written by `equiscale train fluid`", positional=True,
                              metavar="RUN", required=True)
    data: str = setting(None, help="fluid .npz to evaluate on (held-out trajectories)", required=True,
                        metavar="FILE.npz")
    out: str | None = setting(None, help="directory for report and figures", metavar="DIR",
                              default_text="the first run")
    rollout: int = setting(25, help="rollout length in steps", check=positive)
    figures: bool = setting(True, help="PNG figures of the rollouts and errors (--no-figures: none, and no "
                           "matplotlib needed)")
    calibration: str | None = setting(None, help="committees (--ensemble runs): fluid .npz on which the spread's "
                                      "scale factor is fitted", metavar="FILE.npz", default_text="--data")
    shifts: list[str] = setting([], help="committees: also evaluate out-of-distribution shifts, side by side: "
                                "'viscosity' (trajectories simulated at --viscosity-factor x the training viscosity), "
                                "'rollout' (rollouts --rollout-factor x the validation horizon)", metavar="SHIFT",
                                check=_shift_names)
    viscosity_factor: float = setting(0.5, help="the 'viscosity' shift's viscosity, relative to training", check=positive)
    rollout_factor: float = setting(2.0, help="the 'rollout' shift's length, relative to the validation horizon",
                                    check=positive)
    shift_trajectories: int = setting(4, help="trajectories simulated per shift", check=positive)
    seed: int = setting(1000, help="seeds the shifts' simulated trajectories")
    quiet: bool = setting(False, help="no progress bar")
    threads: int | None = setting(None, help=THREADS_HELP, check=positive, default_text="torch's choice")
