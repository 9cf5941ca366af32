"""The settings of ``equiscale data emt``, ``train potential`` and ``evaluate potential``: one dataclass each.

The command-line options, the YAML ``--config`` file and the validation of values are derived from
these dataclasses by :mod:`equiscale.settings`; a field added here appears everywhere. Light: no
torch (nor numpy) at import, so ``equiscale --help`` stays fast.

In Python, ``TrainSettings(data="cu.xyz", out="runs/cu", epochs=50)`` is what
:func:`equiscale.atomistic.train_potential` takes; its checkpoints store it.
"""
from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import Any, ClassVar

from equiscale.settings import Settings, TrainingSettings, at_least, non_negative, positive, resolve, setting

__all__ = ["EMT_ELEMENTS", "DataEMT", "TrainSettings", "EvaluatePotential", "LearnPotential", "MODEL_KEYS", "load_settings"]

EMT_ELEMENTS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
"""The elements ASE's EMT calculator has parameters for."""

MODEL_KEYS = ("lmax", "channels", "layers", "cutoff", "num_radial_basis", "radial_basis", "radial_hidden", "readout_hidden")
"""The fields of :class:`TrainSettings` that are arguments of :class:`~equiscale.atomistic.model.EquivariantPotential`."""

DTYPES = ("float32", "float64")


def _emt_element(value: Any) -> str | None:
    return None if value in EMT_ELEMENTS else f"must be an element EMT has parameters for ({', '.join(EMT_ELEMENTS)})"


SHIFTS = ("hot", "strain")


def _shift_names(value: Any) -> str | None:
    unknown = [v for v in ([value] if isinstance(value, str) else value) if v not in SHIFTS]  # an option or the list
    return f"must name shifts among {', '.join(SHIFTS)}" if unknown else None


def _below_one(value: Any) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def _factor(value: Any) -> str | None:
    return None if 0 < value < 1 else "must be in (0, 1)"


@dataclass
class DataEMT(Settings):
    """``equiscale data emt``: Langevin MD frames of an fcc crystal labelled by ASE's EMT calculator."""

    out: str = setting(None, help="output structure file (extended XYZ)", required=True, metavar="FILE.xyz")
    element: str = setting("Cu", help=f"the metal: {', '.join(EMT_ELEMENTS)}", check=_emt_element)
    size: int = setting(3, help="conventional fcc cells per side: 4 N^3 atoms", check=positive)
    frames: int = setting(100, help="number of frames", check=positive)
    temperature: float = setting(800.0, help="thermostat temperature in K", check=non_negative)
    interval: int = setting(10, help="MD steps of 2 fs between frames", check=positive)
    seed: int = setting(0, help="seeds velocities and thermostat noise")
    quiet: bool = setting(False, help="no progress bar")


@dataclass
class TrainSettings(TrainingSettings):
    """``equiscale train potential``: everything one training run of a potential needs.

    Stored in the run's checkpoints (``--resume`` continues with them). ``data`` may stay unset
    while settings are assembled (a config file without it); training needs it. ``epochs`` left
    unset means 100, or "until ``max_time``" when a time budget is given. ``progress=False``
    (Python) prints nothing during training; ``quiet`` drops only the progress bars.
    """

    default_epochs: ClassVar[int] = 100
    checkpoint_kind: ClassVar[str | None] = "potential"

    data: str | None = setting(None, help="training structures with energies and/or forces (any file ASE reads); "
                               "required here or in --config", metavar="FILE", default_text="none")
    out: str = setting("runs/potential", help="run directory: last.pt, best.pt, history.json", metavar="DIR")
    valid: str | None = setting(None, help="validation structures (any file ASE reads)", metavar="FILE",
                                default_text="a random --valid-fraction of --data")
    valid_fraction: float = setting(0.1, help="fraction of --data held out for validation when --valid is not "
                                    "given (0: no validation)", check=_below_one)
    batch_size: int = setting(4, help="structures per batch", check=positive)
    lr: float = setting(5e-3, help="Adam learning rate", check=positive)
    lr_factor: float = setting(0.5, help="factor of the learning rate when the monitored loss stops improving",
                               check=_factor)
    lr_patience: int = setting(5, help="epochs without improvement before the learning rate drops", check=non_negative)
    energy_weight: float = setting(1.0, help="weight of the energy-per-atom MSE in the loss",
                                   check=non_negative)
    force_weight: float = setting(1.0, help="weight of the force MSE (per component) in the loss",
                                  check=non_negative)
    stress_weight: float = setting(1.0, help="weight of the virial-per-atom MSE in the loss (periodic "
                                   "structures with stress labels)", check=non_negative)
    ema_decay: float | None = setting(0.99, help="keep an exponential moving average of the weights with this decay; "
                                      "validation, best.pt and evaluation use it (null: no average)", check=_below_one)
    patience: int | None = setting(20, help="early stopping after this many epochs without improvement "
                                   "(null: never)", check=positive)
    grad_clip: float | None = setting(None, help="clip the gradient norm to this value", check=positive)
    dtype: str = setting("float32", help="precision of training", choices=DTYPES)
    device: str = setting("auto", help="where to train (auto: cuda if available)", choices=("auto", "cpu", "cuda"))
    progress: bool = setting(True, help="print progress bars and one line per epoch (--no-progress: nothing "
                             "until the end)", resumed=False)
    lmax: int = setting(2, help="highest degree of the features and bond spherical harmonics", check=non_negative)
    channels: int = setting(32, help="multiplicity of every irrep of the hidden features", check=positive)
    layers: int = setting(2, help="interaction layers", check=positive)
    cutoff: float = setting(5.0, help="interaction radius in Angstrom", check=positive)
    num_radial_basis: int = setting(8, help="radial basis functions per bond", check=positive)
    radial_basis: str = setting("bessel", help="radial basis (bessel: trainable frequencies)",
                                choices=("bessel", "gaussian"))
    radial_hidden: int = setting(64, help="hidden width of each layer's radial MLP", check=positive)
    readout_hidden: int = setting(16, help="hidden width of the energy readout MLP", check=at_least(1))

    def __post_init__(self) -> None:
        super().__post_init__()
        weights = (self.energy_weight, self.force_weight, self.stress_weight)
        if max(weights) <= 0:
            raise ValueError(f"loss weights must not all be zero, got energy_weight={weights[0]}, "
                             f"force_weight={weights[1]}, stress_weight={weights[2]}")

    def model_options(self) -> dict[str, Any]:
        """The model's architecture: the :data:`MODEL_KEYS` fields by name."""
        return {key: getattr(self, key) for key in MODEL_KEYS}


@dataclass
class EvaluatePotential(Settings):
    """``equiscale evaluate potential``: errors of a trained potential on labelled structures, and a parity plot."""

    checkpoint: str = setting(None, help="best.pt or last.pt written by `equiscale train potential` (a run "
                              "directory: its best.pt)",
                              positional=True, required=True, metavar="CHECKPOINT")
    data: str = setting(None, help="labelled structures (any file ASE reads)", required=True, metavar="FILE")
    batch_size: int = setting(8, help="structures per batch", check=positive)
    dtype: str | None = setting(None, help="precision", choices=DTYPES, default_text="the training precision")
    json: str | None = setting(None, help="also write the metrics as JSON to this file", metavar="FILE.json")
    figures: bool = setting(True, help="write the parity plot (--no-figures: skip it, no matplotlib needed)")
    out: str | None = setting(None, help="directory for the parity plot", metavar="DIR",
                              default_text="the checkpoint's directory")
    plot: str | None = setting(None, help="file of the parity plot", metavar="FILE.png", default_text="OUT/parity.png")
    calibration: str | None = setting(None, help="committees (--ensemble runs): structures on which the spread's "
                                      "scale factor is fitted", metavar="FILE", default_text="--data")
    shifts: list[str] = setting([], help="committees: also evaluate out-of-distribution shifts of EMT data, side by "
                                "side: 'hot' (Langevin MD at --hot-temperature), 'strain' (cells scaled by 1 +- --strain)",
                                metavar="SHIFT", check=_shift_names)
    hot_temperature: float = setting(1600.0, help="temperature (K) of the 'hot' shift", check=positive)
    strain: float = setting(0.03, help="isotropic strain of the 'strain' shift", check=_factor)
    shift_frames: int = setting(8, help="frames per shift", check=positive)
    seed: int = setting(0, help="seeds the shifted frames' dynamics")

    def plot_path(self) -> str | None:
        """Where the parity plot goes (None with ``figures`` off)."""
        import os

        if not self.figures:
            return None
        if self.plot:
            return self.plot
        return os.path.join(self.out or os.path.dirname(os.path.abspath(self.checkpoint)), "parity.png")


def _calculator_name(value: Any) -> str | None:
    if value == "emt" or (isinstance(value, str) and value.count(":") == 1 and all(value.split(":"))):
        return None
    return "must be 'emt' or an importable ASE calculator class as 'module:Class'"


@dataclass
class LearnPotential(Settings):
    """``equiscale learn potential``: active learning of a potential with a committee and a reference calculator.

    Each round trains the committee (warm-started from the previous round) on the frames labelled so
    far, runs Langevin MD with it, collects the frames whose largest per-atom force spread passes the
    threshold, labels them with the reference and adds them. The MD stops when the spread explodes.
    """

    out: str = setting(None, help="output directory: one folder per round (committee, labelled frames), "
                       "rounds.json", required=True, metavar="DIR")
    calculator: str = setting("emt", help="reference: 'emt' (ASE's EMT) or any ASE calculator class as "
                              "'module:Class' (built without arguments)", check=_calculator_name)
    element: str = setting("Cu", help="the fcc metal of the crystal", check=_emt_element)
    size: int = setting(2, help="conventional fcc cells per side: 4 N^3 atoms", check=positive)
    rounds: int = setting(4, help="rounds of train -> MD -> label", check=positive)
    initial_frames: int = setting(4, help="labelled frames to start from (the crystal with random displacements)",
                                  check=positive)
    rattle: float = setting(0.1, help="standard deviation (A) of the random displacements of the initial frames",
                            check=positive)
    temperature: float = setting(800.0, help="temperature (K) of the committee's Langevin MD and of the test frames",
                                 check=positive)
    md_steps: int = setting(500, help="MD steps of 2 fs per round", check=positive)
    threshold: float | None = setting(None, help="label frames whose largest per-atom force spread (eV/A) passes "
                                      "this", check=positive, default_text="--threshold-factor x the spread on the "
                                      "labelled frames")
    threshold_factor: float = setting(1.0, help="the threshold as a multiple of the committee's mean largest spread "
                                      "on its own training frames (when --threshold is not given)", check=positive)
    explode_factor: float = setting(4.0, help="stop the MD when the spread passes this multiple of the threshold",
                                    check=at_least(1))
    max_new: int = setting(4, help="frames labelled per round at most", check=positive)
    min_gap: int = setting(20, help="MD steps between two labelled frames at least", check=positive)
    ensemble: int = setting(3, help="committee members", check=at_least(2))
    epochs: int = setting(60, help="training epochs of the first round", check=positive)
    retrain_epochs: int = setting(30, help="training epochs of each later round (warm start)", check=positive)
    test_frames: int = setting(20, help="test frames from reference Langevin MD at --temperature (0: none)",
                               check=non_negative)
    lr: float = setting(1e-2, help="Adam learning rate", check=positive)
    batch_size: int = setting(2, help="structures per batch", check=positive)
    lmax: int = setting(1, help="highest degree of the features", check=non_negative)
    channels: int = setting(8, help="multiplicity of every irrep of the hidden features", check=positive)
    layers: int = setting(1, help="interaction layers", check=positive)
    cutoff: float = setting(4.0, help="interaction radius in Angstrom", check=positive)
    seed: int = setting(0, help="seeds the initial frames, members, MD and test frames")
    threads: int | None = setting(1, help="torch CPU threads", check=positive, resumed=False)
    resume: bool = setting(False, help="continue from the last finished round in --out", resumed=False)
    quiet: bool = setting(False, help="no progress bars", resumed=False)

    def train_settings(self, data: str, out: str, seed: int, epochs: int) -> TrainSettings:
        """The settings of one member's training in a round."""
        return TrainSettings(data=data, out=out, seed=seed, epochs=epochs, valid_fraction=0.0, patience=None,
                             lr=self.lr, lr_patience=10, batch_size=self.batch_size, lmax=self.lmax,
                             channels=self.channels, layers=self.layers, cutoff=self.cutoff, radial_hidden=16,
                             readout_hidden=8, num_radial_basis=6, device="cpu", progress=False, threads=self.threads)


def load_settings(path: str | PathLike | None = None, **overrides: Any) -> TrainSettings:
    """Training settings from a YAML file (optional) with ``overrides`` (None values ignored) on top.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown names or wrong types in the file (naming it), or values that fail their checks.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    return resolve(TrainSettings, given, path)  # type: ignore[return-value]
