"""pyscf_to_irreps: F(R x) = D F(x) D^T with PySCF recomputing F at the rotated geometry, for s, p, d, f."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pyscf = pytest.importorskip("pyscf")

from equiscale import o3  # noqa: E402
from equiscale.quantum.basis import (atom_irreps, molecule_irreps, orbital_count, pyscf_to_irreps,  # noqa: E402
                                     shell_transform, shells_from_json, shells_of, shells_to_json)
from equiscale.quantum.labels import make_mf, make_molecule  # noqa: E402

NUMBERS = [8, 1, 1]
POSITIONS = np.array([[0.0, 0.0, 0.1], [0.78, 0.55, 0.0], [-0.7, 0.6, 0.05]])  # no symmetry left


def _rotation(seed: int, det: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return det * R


def _fock(positions: np.ndarray, basis: str) -> tuple[o3.Irreps, np.ndarray]:
    mol = make_molecule(NUMBERS, positions, basis)
    mf = make_mf(mol, "hf", conv_tol=1e-12, conv_tol_grad=1e-8)  # HF: no DFT grid, exactly invariant
    mf.kernel()
    assert mf.converged
    irreps, P = pyscf_to_irreps(mol)
    return irreps, P @ mf.get_fock() @ P.T


def _errors_by_l(irreps: o3.Irreps, error: np.ndarray) -> dict[int, float]:
    """The largest error in the rows of the shells of each l."""
    rows: dict[int, list[int]] = {}
    start = 0
    for mul, ir in irreps:
        for _ in range(mul):
            rows.setdefault(ir.l, []).extend(range(start, start + ir.dim))
            start += ir.dim
    return {l: float(np.abs(error[r]).max()) for l, r in sorted(rows.items())}


@pytest.mark.parametrize("basis, lmax", [("sto-3g", 1), ("def2-svp", 2), ("cc-pvtz", 3)])
@pytest.mark.parametrize("det", [1, -1], ids=["rotation", "improper"])
def test_fock_of_the_rotated_molecule_is_the_rotated_fock(basis, lmax, det):
    R = _rotation(7, det)
    irreps, F = _fock(POSITIONS, basis)
    _, F_rotated = _fock(POSITIONS @ R.T, basis)
    assert max(ir.l for _, ir in irreps) == lmax
    D = irreps.D_from_matrix(torch.tensor(R)).numpy()
    errors = _errors_by_l(irreps, F_rotated - D @ F @ D.T)
    assert set(errors) == set(range(lmax + 1))
    assert max(errors.values()) <= 1e-6, errors


@pytest.mark.parametrize("l", range(6))
def test_shell_values_rotate_with_wigner_d(l):
    """Cheap check for every l up to 5: AO values at R u are D(R) times those at u."""
    from pyscf import gto

    mol = gto.M(atom="He 0 0 0", basis={"He": [[l, [0.8, 1.0]]]}, verbose=0)
    irreps, P = pyscf_to_irreps(mol)
    points = np.random.default_rng(l).normal(size=(20, 3))
    for det in (1, -1):
        R = _rotation(l + 1, det)
        ours = mol.eval_gto("GTOval_sph", points) @ P.T
        rotated = mol.eval_gto("GTOval_sph", points @ R.T) @ P.T
        D = irreps.D_from_matrix(torch.tensor(R)).numpy()
        np.testing.assert_allclose(rotated, ours @ D.T, atol=1e-12)


def test_the_map_is_orthogonal_and_p_is_xyz():
    for l in range(5):
        block = shell_transform(l)
        np.testing.assert_allclose(block @ block.T, np.eye(2 * l + 1), atol=1e-12)
    np.testing.assert_allclose(shell_transform(1), np.eye(3), atol=1e-12)  # PySCF's p order is already (x, y, z)
    with pytest.raises(ValueError):
        shell_transform(2)[0, 0] = 1.0  # cached: read-only


def test_shells_and_irreps_of_water():
    mol = make_molecule(NUMBERS, POSITIONS, "sto-3g")
    shells = shells_of(mol)
    assert shells == {8: [0, 0, 1], 1: [0]}
    assert str(atom_irreps(shells[8])) == "1x0e+1x0e+1x1o"
    irreps = molecule_irreps(NUMBERS, shells)
    assert irreps.dim == orbital_count(NUMBERS, shells) == mol.nao_nr() == 7
    assert shells_from_json(shells_to_json(shells)) == shells
    with pytest.raises(ValueError, match="Z=6 is not in the basis description"):
        molecule_irreps([6, 1], shells)


def test_cartesian_aos_are_refused():
    from pyscf import gto

    mol = gto.M(atom="O 0 0 0; H 0 0 1; H 0 1 0", basis="def2-svp", cart=True, verbose=0)
    with pytest.raises(ValueError, match="Cartesian"):
        pyscf_to_irreps(mol)
