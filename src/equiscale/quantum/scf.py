"""PySCF's SCF started from a predicted Fock matrix, against its default ``minao`` guess.

The predicted ``F`` (our irreps AO basis, Hartree) is carried back to PySCF's order
(``P^T F P``), the generalized eigenproblem ``F C = S C eps`` is solved with the molecule's true
overlap ``S``, and the lowest ``nelectron / 2`` orbitals, doubly occupied, give the initial density
``2 C_occ C_occ^T``. Both runs use the same SCF object settings (functional, grids, tolerances); the
wall time covers the guess and the whole ``kernel()``; the iteration count is PySCF's ``mf.cycles``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

__all__ = ["SCFRun", "density_from_fock", "scf_from_fock", "scf_from_minao"]


@dataclass(frozen=True)
class SCFRun:
    """One SCF run. Unpacks as ``iterations, energy, seconds``.

    Attributes:
        iterations: SCF cycles PySCF ran.
        energy: the final total energy (Hartree).
        seconds: wall time of the guess and the SCF.
        converged: whether PySCF reports convergence within ``max_cycle``.
        energies: the total energy after each cycle (Hartree), for convergence curves.
    """

    iterations: int
    energy: float
    seconds: float
    converged: bool = True
    energies: tuple[float, ...] = field(default=())

    def __iter__(self) -> Iterator:
        return iter((self.iterations, self.energy, self.seconds))


def density_from_fock(mol, fock_irreps: np.ndarray) -> np.ndarray:
    """The closed-shell density (PySCF's AO order) of the lowest orbitals of ``fock_irreps`` ``(n, n)``.

    Raises:
        ValueError: ``fock_irreps`` is not ``(n, n)`` for the molecule's ``n`` AOs, or not finite.
    """
    import scipy.linalg

    from equiscale.quantum.basis import pyscf_to_irreps

    _, P = pyscf_to_irreps(mol)
    fock_irreps = np.asarray(fock_irreps, dtype=float)
    if fock_irreps.shape != P.shape:
        raise ValueError(f"the Fock matrix has shape {fock_irreps.shape} but the molecule has {P.shape[0]} AOs "
                         f"in basis {mol.basis!r}")
    if not np.isfinite(fock_irreps).all():
        raise ValueError("the Fock matrix holds NaN or infinite values")
    fock = P.T @ (fock_irreps + fock_irreps.T) / 2 @ P
    _, coefficients = scipy.linalg.eigh(fock, mol.intor_symmetric("int1e_ovlp"))
    occupied = coefficients[:, : mol.nelectron // 2]
    return 2 * occupied @ occupied.T


def _run(mol, xc: str, dm0: np.ndarray | None, conv_tol: float, max_cycle: int, start: float) -> SCFRun:
    from equiscale.quantum.labels import make_mf

    mf = make_mf(mol, xc, conv_tol=conv_tol, max_cycle=max_cycle)
    energies: list[float] = []
    mf.callback = lambda envs: energies.append(float(envs["e_tot"]))
    if dm0 is None:
        mf.init_guess = "minao"
    mf.kernel(dm0=dm0)
    return SCFRun(int(mf.cycles), float(mf.e_tot), time.perf_counter() - start, bool(mf.converged), tuple(energies))


def scf_from_fock(mol, fock_irreps: np.ndarray, xc: str = "b3lyp", conv_tol: float = 1e-9,
                  max_cycle: int = 100) -> SCFRun:
    """Run the SCF of ``mol`` from the density of a predicted Fock matrix.

    Args:
        mol: a built ``pyscf.gto.Mole`` (e.g. :func:`~equiscale.quantum.labels.make_molecule`).
        fock_irreps: ``(n, n)`` predicted ``F`` in our irreps basis (Hartree).
        xc: the functional (``"hf"``: Hartree-Fock).
        conv_tol: energy tolerance (Hartree); max_cycle: iteration limit.

    Returns:
        :class:`SCFRun` (``iterations, energy, seconds = scf_from_fock(...)``).
    """
    start = time.perf_counter()
    return _run(mol, xc, density_from_fock(mol, fock_irreps), conv_tol, max_cycle, start)


def scf_from_minao(mol, xc: str = "b3lyp", conv_tol: float = 1e-9, max_cycle: int = 100) -> SCFRun:
    """The same SCF from PySCF's default ``minao`` guess (the baseline of :func:`scf_from_fock`)."""
    return _run(mol, xc, None, conv_tol, max_cycle, time.perf_counter())
