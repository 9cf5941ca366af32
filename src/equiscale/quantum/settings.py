"""The settings of the quantum commands: one dataclass each (``equiscale data dft``, ...).

The command-line options, the YAML ``--config`` file and the validation of values are derived from
these dataclasses by :mod:`equiscale.settings`; a field added here appears everywhere. Light: no
torch, numpy or PySCF at import, so ``equiscale --help`` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from equiscale.settings import Settings, TrainingSettings, non_negative, positive, setting

__all__ = ["DataDFT", "RESUME_KEYS", "TrainHamiltonian", "EvaluateHamiltonian", "HAMILTONIAN_MODELS", "MODEL_KEYS",
           "GUESSES"]

RESUME_KEYS = ("molecule", "structures", "frames", "basis", "xc", "seed", "temperature", "amplitude", "shard_size",
               "polarizability", "field", "conv_tol", "conv_tol_grad", "max_cycle")
"""The :class:`DataDFT` fields a resumed ``data dft`` run must repeat (the others say how it runs)."""


def _basis_name(value: Any) -> str | None:
    return None if value.strip() else "must name a PySCF basis (e.g. sto-3g, def2-svp)"


@dataclass
class DataDFT(Settings):
    """``equiscale data dft``: label molecular frames with PySCF (RKS, or HF with ``--xc hf``) into a dataset
    directory of ``.npz`` shards (see :mod:`equiscale.quantum.data`)."""

    out: str = setting(None, help="output dataset directory (e.g. water.dft); an interrupted run resumes into it",
                       required=True, metavar="DIR")
    molecule: str = setting("water", help="molecule of ASE's G2 collection (H2O, CH3CH2OH, ...) or a common name "
                            "(water, ethanol, methane, benzene, ...); ignored with --structures")
    structures: str | None = setting(None, help="label these structures instead (any trajectory ASE reads, e.g. MD "
                                     "frames), as given: no displacement or rotation", metavar="FILE")
    frames: int | None = setting(None, help="number of frames", check=positive,
                                 default_text="100; with --structures every frame of the file")
    basis: str = setting("def2-svp", help="PySCF basis set", check=_basis_name)
    xc: str = setting("b3lyp", help="exchange-correlation functional of restricted Kohn-Sham (hf: Hartree-Fock)")
    temperature: float = setting(300.0, help="frames are the G2 geometry with every coordinate displaced by "
                                 "N(0, sigma^2), sigma = sqrt(k_B T / kappa), kappa = 10 eV/A^2 (0.051 A at 300 K), "
                                 "then rotated uniformly at random about the centroid; T in K", check=non_negative)
    amplitude: float | None = setting(None, help="sigma in Angstrom directly (overrides --temperature)",
                                      check=non_negative, metavar="ANGSTROM", default_text="from --temperature")
    seed: int = setting(0, help="seed of the displacements and rotations (frame k uses the generator [seed, k])")
    workers: int | None = setting(None, help="local worker processes (a Dask LocalCluster; 1: in this process)",
                                  check=positive, default_text="the CPU cores", resumed=False)
    dask_scheduler: str | None = setting(None, help="address of a running Dask scheduler to label on instead "
                                         "(its workers need equiscale[quantum] installed)", metavar="ADDRESS",
                                         resumed=False)
    shard_size: int = setting(10, help="frames per task and per shard file", check=positive)
    polarizability: bool = setting(True, help="compute the static polarizability by finite fields (six more SCFs "
                                  "per frame; --no-polarizability leaves it out)")
    field: float = setting(1e-3, help="electric field strength of the polarizability's central differences, a.u.",
                           check=positive)
    conv_tol: float = setting(1e-11, help="SCF energy convergence tolerance, Hartree", check=positive)
    conv_tol_grad: float = setting(1e-7, help="SCF orbital-gradient tolerance (bounds the error of F, density "
                                   "and dipole)", check=positive)
    max_cycle: int = setting(100, help="SCF iteration limit; frames that do not converge are recorded and skipped",
                             check=positive)
    quiet: bool = setting(False, help="no progress bar", resumed=False)

    @property
    def frame_count(self) -> int | None:
        """``frames``, else 100 for generated frames and None (all) for ``structures``."""
        if self.frames is not None:
            return self.frames
        return None if self.structures else 100


# --- train / evaluate hamiltonian ---------------------------------------------------------------------------
HAMILTONIAN_MODELS = ("equivariant", "baseline")
MODEL_KEYS = ("lmax", "channels", "layers", "cutoff", "pair_channels", "pair_cutoff", "num_radial_basis", "radial_hidden",
              "guess")
GUESSES = ("none", "core", "sap")
"""Cheap guesses a model may learn the difference to (:mod:`equiscale.quantum.guess`); ``none``: F itself."""
"""The :class:`TrainHamiltonian` fields that are arguments of :class:`~equiscale.quantum.model.HamiltonianModel`."""


def _below_one(value: Any) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def _factor(value: Any) -> str | None:
    return None if 0 < value < 1 else "must be in (0, 1)"


@dataclass
class TrainHamiltonian(TrainingSettings):
    """``equiscale train hamiltonian``: fit the Fock/KS matrix (and optionally properties) of a DFT dataset.

    ``data`` may stay unset while settings are assembled (a config file without it); training needs it.
    ``epochs`` left unset means 200, or "until ``max_time``" when a time budget is given.
    """

    default_epochs: ClassVar[int] = 200
    checkpoint_kind: ClassVar[str | None] = "hamiltonian"

    data: str | None = setting(None, help="DFT dataset directory (`equiscale data dft`); required here or in --config",
                               metavar="DIR", default_text="none")
    out: str = setting("runs/hamiltonian", help="run directory: last.pt, best.pt, history.json", metavar="DIR")
    valid: str | None = setting(None, help="validation dataset directory", metavar="DIR",
                                default_text="a random --valid-fraction of --data")
    valid_fraction: float = setting(0.1, help="fraction of --data held out for validation when --valid is not given "
                                    "(0: no validation)", check=_below_one)
    train_frames: int | None = setting(None, help="train on this many of the remaining frames (learning curves)",
                                       check=positive, default_text="all")
    model: str = setting("equivariant", help="equivariant: HamiltonianModel; baseline: a plain network of about the "
                         "same size trained on randomly rotated and reflected frames", choices=HAMILTONIAN_MODELS)
    batch_size: int = setting(2, help="molecules per batch (small molecules: small batches, more steps)",
                              check=positive)
    lr: float = setting(1e-2, help="Adam learning rate", check=positive)
    lr_factor: float = setting(0.5, help="factor of the learning rate when the monitored loss stops improving",
                               check=_factor)
    lr_patience: int = setting(20, help="epochs without improvement before the learning rate drops (to at least "
                               "1/1000 of --lr)", check=non_negative)
    patience: int | None = setting(None, help="early stopping after this many epochs without improvement",
                                   check=positive, default_text="never")
    grad_clip: float | None = setting(None, help="clip the gradient norm to this value", check=positive)
    hamiltonian_weight: float = setting(1.0, help="weight of the MSE of the H entries (Hartree^2)", check=non_negative)
    energy_weight: float = setting(0.0, help="weight of the MSE of the total energy per atom (Hartree^2)",
                                   check=non_negative)
    orbital_weight: float = setting(0.0, help="weight of the MSE of the occupied orbital energies from the predicted "
                                    "H and the true overlap (Hartree^2)", check=non_negative)
    occupied_weight: float = setting(0.0, help="weight of the MSE of the H error in the true orbital basis, rows of "
                                     "the occupied orbitals: C_occ^T (H - F) C, the occupied-virtual entries scaled by "
                                     "gap / (eps_a - eps_i), i.e. the errors that move orbital energies and the "
                                     "density (Hartree^2)", check=non_negative)
    guess: str = setting("none", help="learn F minus a cheap one-electron guess (PySCF integrals, computed once per frame "
                         "and kept in DATA/guess-KIND/ beside the shards): core (T + V_nuc) or sap (T + V_nuc + "
                         "superposed atomic potentials); none: F itself",
                         choices=GUESSES)
    dipole_weight: float = setting(0.0, help="weight of the dipole MSE (atomic units)", check=non_negative)
    polarizability_weight: float = setting(0.0, help="weight of the polarizability MSE (atomic units)",
                                           check=non_negative)
    dtype: str = setting("float32", help="precision of training", choices=("float32", "float64"))
    device: str = setting("cpu", help="where to train (auto: cuda if available)", choices=("cpu", "cuda", "auto"),
                          resumed=False)
    lmax: int = setting(2, help="highest degree of the node features and bond harmonics", check=non_negative)
    channels: int = setting(16, help="multiplicity of each irrep of the node features", check=positive)
    layers: int = setting(2, help="message-passing layers", check=positive)
    cutoff: float = setting(5.0, help="message-passing radius in Angstrom", check=positive)
    pair_channels: int = setting(8, help="multiplicity of each irrep of the pair features", check=positive)
    pair_cutoff: float | None = setting(None, help="predict off-diagonal blocks only for atoms closer than this "
                                        "(Angstrom)", check=positive, default_text="every pair")
    num_radial_basis: int = setting(8, help="radial basis functions", check=positive)
    radial_hidden: int = setting(32, help="hidden width of the radial MLPs", check=positive)
    width: int | None = setting(None, help="baseline: hidden width of its MLPs", check=positive,
                                default_text="matched to the equivariant model's parameter count")

    def __post_init__(self) -> None:
        super().__post_init__()
        weights = (self.hamiltonian_weight, self.energy_weight, self.orbital_weight, self.dipole_weight,
                   self.polarizability_weight, self.occupied_weight)
        if max(weights) <= 0:
            raise ValueError("loss weights must not all be zero (hamiltonian_weight, energy_weight, orbital_weight, "
                             "dipole_weight, polarizability_weight, occupied_weight)")

    def model_options(self) -> dict[str, Any]:
        """The equivariant model's architecture: the :data:`MODEL_KEYS` fields by name."""
        return {key: getattr(self, key) for key in MODEL_KEYS}


@dataclass
class EvaluateHamiltonian(Settings):
    """``equiscale evaluate hamiltonian``: QH9 metrics, SCF from the predicted H against ``minao``, figures;
    for a committee (``--ensemble N``) also the calibration of its per-block spread."""

    checkpoint: str = setting(None, help="best.pt or last.pt of `equiscale train hamiltonian` (a run directory: its "
                              "best.pt; a committee run directory of --ensemble N: the members' mean, with the "
                              "per-block spread calibrated against the error)", positional=True, required=True,
                              metavar="CHECKPOINT")
    data: str = setting(None, help="DFT dataset directory to evaluate on (held-out frames)", required=True,
                        metavar="DIR")
    frames: int | None = setting(None, help="evaluate the first N frames", check=positive, default_text="all")
    scf_frames: int = setting(5, help="frames on which PySCF runs from the predicted H and from minao (0: none)",
                              check=non_negative)
    conv_tol: float = setting(1e-10, help="SCF energy tolerance of those runs, Hartree", check=positive)
    batch_size: int = setting(8, help="molecules per batch", check=positive)
    dtype: str | None = setting(None, help="precision", choices=("float32", "float64"),
                                default_text="the training precision")
    json: str | None = setting(None, help="also write the metrics as JSON to this file", metavar="FILE.json")
    figures: bool = setting(True, help="write the figures (--no-figures: none, no matplotlib needed)")
    out: str | None = setting(None, help="directory for the figures", metavar="DIR",
                              default_text="the checkpoint's directory (a committee's run directory)")
    threads: int | None = setting(None, help="torch CPU threads", check=positive, default_text="torch's choice")
