"""SCF from a predicted Fock matrix against PySCF's minao guess."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyscf")

from equiscale.quantum.labels import label_frame, make_molecule  # noqa: E402
from equiscale.quantum.scf import SCFRun, density_from_fock, scf_from_fock, scf_from_minao  # noqa: E402

NUMBERS = [8, 1, 1]
POSITIONS = np.array([[0.0, 0.0, 0.1], [0.78, 0.55, 0.0], [-0.7, 0.6, 0.05]])


@pytest.fixture(scope="module")
def water():
    return make_molecule(NUMBERS, POSITIONS, "sto-3g"), label_frame(NUMBERS, POSITIONS, "sto-3g", "hf",
                                                                    polarizability=False)


def test_the_converged_fock_needs_fewer_iterations_than_minao(water):
    mol, labels = water
    exact = scf_from_fock(mol, labels["fock"], xc="hf")
    noisy = scf_from_fock(mol, labels["fock"] + 1e-3 * np.random.default_rng(0).normal(size=(7, 7)), xc="hf")
    minao = scf_from_minao(mol, xc="hf")
    assert isinstance(exact, SCFRun) and exact.converged and minao.converged and noisy.converged
    iterations, energy, seconds = exact
    assert iterations < minao.iterations and noisy.iterations <= minao.iterations and seconds > 0
    for run in (exact, noisy):
        assert abs(run.energy - minao.energy) <= 1e-8
    assert abs(energy - labels["energy"]) <= 1e-8
    assert len(minao.energies) >= 1


def test_the_density_of_the_fock_holds_the_electrons(water):
    mol, labels = water
    dm = density_from_fock(mol, labels["fock"])
    np.testing.assert_allclose(np.trace(dm @ mol.intor("int1e_ovlp")), mol.nelectron, atol=1e-10)


def test_a_fock_of_the_wrong_size_is_refused(water):
    mol, labels = water
    with pytest.raises(ValueError, match=r"shape \(6, 6\) but the molecule has 7 AOs"):
        scf_from_fock(mol, labels["fock"][:6, :6], xc="hf")
    with pytest.raises(ValueError, match="NaN"):
        scf_from_fock(mol, np.full((7, 7), np.nan), xc="hf")
