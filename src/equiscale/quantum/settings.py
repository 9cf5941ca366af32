"""The settings of the quantum commands: one dataclass each (``equiscale data dft``, ...).

The command-line options, the YAML ``--config`` file and the validation of values are derived from
these dataclasses by :mod:`equiscale.settings`; a field added here appears everywhere. Light: no
torch, numpy or PySCF at import, so ``equiscale --help`` stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from equiscale.settings import Settings, non_negative, positive, setting

__all__ = ["DataDFT", "RESUME_KEYS"]

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
    polarizability: bool = setting(True, help="the static polarizability by finite fields (six more SCFs per frame)")
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
