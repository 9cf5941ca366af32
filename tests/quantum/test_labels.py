"""PySCF labels of one frame and one shard: consistency, equivariance of the tensors, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

pytest.importorskip("pyscf")

from equiscale.quantum.labels import SCFNotConverged, label_frame, label_shard, make_molecule  # noqa: E402

NUMBERS = [8, 1, 1]
POSITIONS = np.array([[0.0, 0.0, 0.1], [0.78, 0.55, 0.0], [-0.7, 0.6, 0.05]])
R = np.array([[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]])  # a rotation


@pytest.fixture(scope="module")
def labels():
    return label_frame(NUMBERS, POSITIONS, "sto-3g", "hf")


def test_matrices_are_consistent(labels):
    F, S, D = labels["fock"], labels["overlap"], labels["density"]
    assert F.shape == S.shape == D.shape == (7, 7)
    np.testing.assert_allclose(F, F.T, atol=1e-12)
    np.testing.assert_allclose(np.trace(D @ S), 10.0, atol=1e-8)  # electrons
    np.testing.assert_allclose(scipy.linalg.eigh(F, S, eigvals_only=True), labels["orbital_energies"], atol=1e-6)
    np.testing.assert_allclose(np.diag(S), 1.0, atol=1e-12)


def test_dipole_and_polarizability_rotate_as_tensors(labels):
    rotated = label_frame(NUMBERS, POSITIONS @ R.T, "sto-3g", "hf")
    np.testing.assert_allclose(rotated["energy"], labels["energy"], atol=1e-9)
    np.testing.assert_allclose(rotated["dipole"], R @ labels["dipole"], atol=1e-7)
    alpha = labels["polarizability"]
    np.testing.assert_allclose(rotated["polarizability"], R @ alpha @ R.T, atol=1e-3)
    np.testing.assert_allclose(alpha, alpha.T, atol=1e-3)
    assert np.linalg.eigvalsh((alpha + alpha.T) / 2).min() > 0


def test_kohn_sham_labels_rotate_up_to_the_grid():
    """B3LYP: PySCF's integration grid does not rotate with the molecule, which leaves ~1e-6 Hartree."""
    import torch

    from equiscale.quantum.basis import molecule_irreps

    plain = label_frame(NUMBERS, POSITIONS, "sto-3g", "b3lyp", polarizability=False)
    rotated = label_frame(NUMBERS, POSITIONS @ R.T, "sto-3g", "b3lyp", polarizability=False)
    D = molecule_irreps(NUMBERS, {8: [0, 0, 1], 1: [0]}).D_from_matrix(torch.tensor(R)).numpy()
    np.testing.assert_allclose(rotated["fock"], D @ plain["fock"] @ D.T, atol=1e-5)
    np.testing.assert_allclose(rotated["density"], D @ plain["density"] @ D.T, atol=1e-5)
    np.testing.assert_allclose(rotated["overlap"], D @ plain["overlap"] @ D.T, atol=1e-12)


def test_polarizability_matches_the_energy_curvature():
    """alpha_zz = -d^2E/dE_z^2: central second difference of the energy, independent of the dipole code."""
    from equiscale.quantum.labels import make_mf

    mol = make_molecule(NUMBERS, POSITIONS, "sto-3g")
    with mol.with_common_orig((0, 0, 0)):
        z = mol.intor_symmetric("int1e_r", comp=3)[2]
    energies = []
    for e in (-2e-3, 0.0, 2e-3):
        mf = make_mf(mol, "hf", conv_tol=1e-13, conv_tol_grad=1e-9)
        h1 = mf.get_hcore() + e * z
        mf.get_hcore = lambda *a, h1=h1: h1
        energies.append(mf.kernel())
    curvature = (energies[0] - 2 * energies[1] + energies[2]) / 2e-3 ** 2
    alpha = label_frame(NUMBERS, POSITIONS, "sto-3g", "hf", field=2e-3)["polarizability"]
    np.testing.assert_allclose(alpha[2, 2], -curvature, rtol=1e-3)


def test_scf_that_does_not_converge_raises_and_a_shard_records_it():
    with pytest.raises(SCFNotConverged, match="did not converge"):
        label_frame(NUMBERS, POSITIONS, "sto-3g", "hf", max_cycle=1, polarizability=False)
    task = {"shard": 3, "numbers": NUMBERS, "frame_index": [5, 6], "positions": np.stack([POSITIONS, POSITIONS]),
            "basis": "sto-3g", "xc": "hf", "conv_tol": 1e-11, "conv_tol_grad": 1e-7, "max_cycle": 1, "field": 1e-3,
            "polarizability": False}
    result = label_shard(task)
    assert result["shard"] == 3 and [i for i, _ in result["failed"]] == [5, 6]
    assert result["arrays"]["fock"].shape[0] == 0 and "polarizability" not in result["arrays"]


def test_bad_input_gives_one_line():
    bad = POSITIONS.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        label_frame(NUMBERS, bad, "sto-3g", "hf")
    with pytest.raises(ValueError, match="basis 'sto-3g' does not cover every element"):
        make_molecule([54, 1, 1], POSITIONS, "sto-3g")  # Xe has no STO-3G
    with pytest.raises(ValueError, match="unknown atomic number 200"):
        make_molecule([200, 1, 1], POSITIONS, "sto-3g")
    with pytest.raises(ValueError, match="9 electrons"):
        label_frame([8, 1], POSITIONS[:2], "sto-3g", "hf")
