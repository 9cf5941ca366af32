"""The atomic-orbital basis in our irreps convention, and the one map from PySCF's AO order to it.

A basis is described by its shells: ``shells = {Z: [l, ...]}``, for each atomic number the angular
momentum of each shell in PySCF's order (a contracted shell with several contractions counts once per
contraction), e.g. water in STO-3G is ``{1: [0], 8: [0, 0, 1]}``. An atom's block of AOs is an
:class:`~equiscale.o3.Irreps` with one irrep per shell, of parity ``(-1)^l`` (``"0e+0e+1o"`` for O in
STO-3G); a molecule's irreps are its atoms' irreps concatenated in atom order.

PySCF orders the real spherical functions of a shell its own way (p as x, y, z; other l by
m = -l..l, with its own signs and normalisation of the angular factor); e3nn's (our) real harmonics
differ, and for l >= 2 not by a signed permutation (e3nn's polar axis is y). :func:`pyscf_to_irreps`
derives the map numerically: it evaluates one PySCF shell of each l at fixed points of the unit sphere
(``mol.eval_gto("GTOval_sph")``) and solves ``AO = Y A`` against :func:`equiscale.o3.spherical_harmonics`
by least squares; ``A`` (scaled to be orthogonal) is the shell's block of ``P``. The blocks are cached
by l (a pure function of l: the points are fixed), so the map never depends on call order.

With ``P`` orthogonal, ``P @ M @ P.T`` carries any AO matrix (Fock, overlap, density) from PySCF's
order to ours, and ``P.T @ M @ P`` back; in ours ``F(R x) = D F(x) D^T`` with
``D = irreps.D_from_matrix(R)`` for every R in O(3) (tests/quantum/test_basis.py checks this by
rotating molecules through PySCF).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from equiscale.o3 import Irreps

__all__ = ["shells_of", "atom_irreps", "molecule_irreps", "orbital_count", "shell_transform", "pyscf_to_irreps",
           "ao_transform",
           "to_irreps", "from_irreps", "shells_to_json", "shells_from_json"]


def _atomic_number(mol, atom: int) -> int:
    from pyscf.data.elements import charge

    return int(charge(mol.atom_pure_symbol(atom)))  # not atom_charge: that is the charge left by an ECP


def shells_of(mol) -> dict[int, list[int]]:
    """The shells of a built PySCF molecule: ``{Z: [l of each shell, in PySCF's AO order]}``.

    Raises:
        ValueError: Cartesian AOs (``mol.cart``), or two atoms of one element with different shells
            (a per-atom basis: the shell description is per element).
    """
    if mol.cart:
        raise ValueError("Cartesian AOs (mol.cart=True) are not supported: use real spherical AOs (cart=False)")
    shells: dict[int, list[int]] = {}
    for atom in range(mol.natm):
        z = _atomic_number(mol, atom)
        ls = [int(mol.bas_angular(b)) for b in mol.atom_shell_ids(atom) for _ in range(mol.bas_nctr(b))]
        if shells.setdefault(z, ls) != ls:
            raise ValueError(f"atoms of element Z={z} carry different shells ({shells[z]} and {ls}): the shell "
                             "description is per element, so give every atom of an element the same basis")
    return shells


def atom_irreps(shells_for_z: Sequence[int]) -> "Irreps":
    """One atom's AO irreps: one irrep per shell, ``l`` with parity ``(-1)^l`` (e.g. ``0e+0e+1o``)."""
    from equiscale.o3 import Irreps

    return Irreps([(1, (int(l), (-1) ** int(l))) for l in shells_for_z])


def _shells_for(z: int, shells: Mapping[int, Sequence[int]]) -> Sequence[int]:
    if int(z) not in shells:
        raise ValueError(f"element Z={int(z)} is not in the basis description (it has Z = "
                         f"{', '.join(str(k) for k in sorted(shells))})")
    return shells[int(z)]


def molecule_irreps(numbers: Sequence[int], shells: Mapping[int, Sequence[int]]) -> "Irreps":
    """A molecule's AO irreps: its atoms' :func:`atom_irreps` in atom order (not simplified).

    Raises:
        ValueError: an atomic number without shells in ``shells``.
    """
    from equiscale.o3 import Irreps

    return Irreps([mul_ir for z in numbers for mul_ir in atom_irreps(_shells_for(int(z), shells))])


def orbital_count(numbers: Sequence[int], shells: Mapping[int, Sequence[int]]) -> int:
    """The number of AOs of a molecule, ``sum(2l + 1)`` over its atoms' shells (no torch needed)."""
    return sum(2 * l + 1 for z in numbers for l in _shells_for(int(z), shells))


@functools.lru_cache(maxsize=None)
def shell_transform(l: int) -> np.ndarray:
    """The orthogonal ``(2l+1, 2l+1)`` block of ``P`` for one shell of angular momentum ``l``.

    Row ``i`` is our (e3nn's) real harmonic ``i``, column ``j`` PySCF's function ``j``:
    ``ao_pyscf(u) = c * Y(u) @ A`` on the unit sphere, ``c`` the shared radial factor. Read-only
    (cached per l).
    """
    import torch
    from pyscf import gto

    from equiscale import o3

    l = int(l)
    mol = gto.M(atom="He 0 0 0", basis={"He": [[l, [1.0, 1.0]]]}, unit="Bohr", verbose=0)
    # fixed, well-spread points: a Fibonacci sphere, enough for an overdetermined fit at any l
    count = 4 * (2 * l + 1) ** 2
    k = np.arange(count) + 0.5
    height = 1 - 2 * k / count
    angle = np.pi * (1 + 5 ** 0.5) * k
    radius = np.sqrt(1 - height ** 2)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle), height], axis=1)
    ao = mol.eval_gto("GTOval_sph", points)  # (count, 2l+1), PySCF's order
    harmonics = o3.spherical_harmonics(l, torch.from_numpy(points), normalize=True,
                                       normalization="component").numpy()
    block, *_ = np.linalg.lstsq(harmonics, ao, rcond=None)
    block /= np.sqrt(np.mean(np.sum(block ** 2, axis=0)))
    residual = np.abs(block @ block.T - np.eye(2 * l + 1)).max()
    if residual > 1e-9:  # a PySCF convention we do not expect (e.g. non-orthonormal shells)
        raise RuntimeError(f"PySCF's l={l} shell is not an orthogonal change of basis from e3nn's harmonics "
                           f"(deviation {residual:.1e})")
    block[np.abs(block) < 1e-14] = 0.0
    block.setflags(write=False)
    return block


def ao_transform(mol, blocks: Mapping[int, np.ndarray] | None = None) -> np.ndarray:
    """``P`` of :func:`pyscf_to_irreps` alone, in numpy (no torch import when ``blocks`` is given).

    Args:
        mol: a built ``pyscf.gto.Mole`` with real spherical AOs.
        blocks: ``{l: shell_transform(l)}`` computed elsewhere (what the labelling workers get, so
            that they never import torch); missing l are computed here.
    """
    shells = shells_of(mol)
    numbers = [_atomic_number(mol, a) for a in range(mol.natm)]
    n = mol.nao_nr()
    if orbital_count(numbers, shells) != n:
        raise ValueError(f"the molecule has {n} AOs but its shells describe {orbital_count(numbers, shells)}")
    P = np.zeros((n, n))
    start = 0
    for z in numbers:
        for l in shells[z]:
            size = 2 * l + 1
            P[start:start + size, start:start + size] = (blocks[l] if blocks is not None and l in blocks
                                                         else shell_transform(l))
            start += size
    return P


def pyscf_to_irreps(mol) -> tuple["Irreps", np.ndarray]:
    """The molecule's AO irreps and the orthogonal map ``P`` from PySCF's AO order to ours.

    Args:
        mol: a built ``pyscf.gto.Mole`` with real spherical AOs.

    Returns:
        ``(irreps, P)``: ``irreps`` as :func:`molecule_irreps`; ``P`` float64 numpy ``(n, n)``,
        block-diagonal (one block per shell), with ``P @ M @ P.T`` any AO matrix ``M`` of PySCF in
        our convention (``F(R x) = D F(x) D^T``, ``D = irreps.D_from_matrix(R)``).

    Raises:
        ValueError: Cartesian AOs, per-atom bases, or an AO count that does not match the shells.
    """
    P = ao_transform(mol)
    return molecule_irreps([_atomic_number(mol, a) for a in range(mol.natm)], shells_of(mol)), P


def to_irreps(matrix: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``P M P^T``: an AO matrix ``(..., n, n)`` in PySCF's order in ours."""
    return P @ matrix @ P.T


def from_irreps(matrix: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``P^T M P``: an AO matrix ``(..., n, n)`` in our order back in PySCF's."""
    return P.T @ matrix @ P


def shells_to_json(shells: Mapping[int, Sequence[int]]) -> dict[str, list[int]]:
    """``{"Z": [l, ...]}`` with string keys, sorted by Z (JSON's mapping keys are strings)."""
    return {str(z): [int(l) for l in shells[z]] for z in sorted(shells)}


def shells_from_json(data: Mapping[str, Sequence[int]]) -> dict[int, list[int]]:
    """The inverse of :func:`shells_to_json`; ValueError on keys or values that are not integers."""
    try:
        return {int(z): [int(l) for l in ls] for z, ls in data.items()}
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"a shell description must map atomic numbers to lists of l, got {data!r}") from error
