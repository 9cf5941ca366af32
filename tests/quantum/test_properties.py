"""Properties: F C = S C eps against scipy and PySCF, its gradient, the density, the 0e + 2e ->
symmetric 3x3 map (rotates as R T R^T), and the dipole and polarizability heads' symmetries."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from equiscale import o3
from equiscale.quantum.properties import (PropertyHeads, density_matrix, occupied_count, padded_orbitals, solve_fock,
                                          symmetric_cartesian)


def _random_pair(n, generator):
    a = torch.randn(n, n, dtype=torch.float64, generator=generator)
    s = a @ a.T / n + torch.eye(n, dtype=torch.float64)
    f = torch.randn(n, n, dtype=torch.float64, generator=generator)
    return f + f.T, s


def test_solve_fock_matches_scipy_and_orthonormalises():
    f, s = _random_pair(7, torch.Generator().manual_seed(0))
    energies, coefficients = solve_fock(f, s)
    reference = scipy.linalg.eigh(f.numpy(), s.numpy(), eigvals_only=True)
    assert np.allclose(energies.numpy(), reference, atol=1e-12)
    assert torch.allclose(coefficients.T @ s @ coefficients, torch.eye(7, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(f @ coefficients, s @ coefficients * energies, atol=1e-11)


def test_solve_fock_is_differentiable():
    f, s = _random_pair(5, torch.Generator().manual_seed(1))
    f.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: solve_fock(x, s)[0][:3], (f,))


def test_padded_orbitals_and_density():
    generator = torch.Generator().manual_seed(2)
    (f1, s1), (f2, s2) = _random_pair(4, generator), _random_pair(6, generator)
    fock, overlap = torch.zeros(2, 6, 6, dtype=torch.float64), torch.zeros(2, 6, 6, dtype=torch.float64)
    fock[0, :4, :4], overlap[0, :4, :4], fock[1], overlap[1] = f1, s1, f2, s2
    first, second = padded_orbitals(fock, overlap, torch.tensor([4, 6]))
    assert torch.allclose(first[0], solve_fock(f1, s1)[0]) and second[0].shape == (6,)
    d = density_matrix(f2, s2, 2)
    assert torch.allclose(d @ s2 @ d, 2 * d, atol=1e-12)  # idempotent (closed shell)
    assert torch.allclose(torch.trace(d @ s2), torch.tensor(4.0, dtype=torch.float64))
    assert occupied_count([8, 1, 1]) == 5
    with pytest.raises(ValueError, match="closed-shell"):
        occupied_count([1])
    with pytest.raises(ValueError, match="positive definite"):
        solve_fock(f1, -s1)


def test_pyscf_orbital_energies_from_its_fock_matrix():
    pyscf = pytest.importorskip("pyscf")
    mol = pyscf.gto.M(atom="O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692", basis="sto-3g", verbose=0)
    mf = pyscf.scf.RHF(mol).run(conv_tol=1e-12)
    energies, _ = solve_fock(torch.as_tensor(mf.get_fock()), torch.as_tensor(mf.get_ovlp()))
    assert np.allclose(energies.numpy(), mf.mo_energy, atol=1e-9)


def test_symmetric_cartesian_rotates_as_a_rank_two_tensor():
    generator = torch.Generator().manual_seed(3)
    scalar, quad = torch.randn(2, dtype=torch.float64, generator=generator), torch.randn(2, 5, dtype=torch.float64, generator=generator)
    t = symmetric_cartesian(scalar, quad)
    assert torch.allclose(t, t.transpose(-1, -2), atol=1e-15)
    assert torch.allclose(torch.diagonal(t, dim1=-2, dim2=-1).sum(-1), 3 * scalar, atol=1e-13)
    rotation = o3.rand_matrix(dtype=torch.float64)
    rotated = symmetric_cartesian(scalar, quad @ o3.Irrep("2e").D_from_matrix(rotation).T)
    assert (rotated - rotation @ t @ rotation.T).abs().max() <= 1e-13


def test_symmetric_cartesian_is_cartesian_tensor_and_keeps_the_clebsch_gordan_numbers():
    """Through o3.CartesianTensor("ij=ji") now: the same numbers as the hand-built sqrt(5) C^{112}
    formula it replaced (so trained checkpoints keep their polarizability), and from_cartesian inverts it."""
    import math

    generator = torch.Generator().manual_seed(4)
    scalar, quad = torch.randn(3, dtype=torch.float64, generator=generator), torch.randn(3, 5, dtype=torch.float64, generator=generator)
    cg = o3.wigner_3j(1, 1, 2, dtype=torch.float64) * math.sqrt(5.0)
    by_hand = scalar[:, None, None] * torch.eye(3, dtype=torch.float64) + torch.einsum("abm,nm->nab", cg, quad)
    t = symmetric_cartesian(scalar, quad)
    assert (t - by_hand).abs().max() < 1e-14
    coefficients = o3.CartesianTensor("ij=ji").from_cartesian(t)
    assert torch.allclose(coefficients, torch.cat([scalar[:, None] * math.sqrt(3.0), quad], -1), atol=1e-14)


def test_property_heads_translation_invariant_dipole():
    torch.manual_seed(0)
    irreps = o3.Irreps("4x0e+2x1o+2x2e")
    heads = PropertyHeads(irreps, [1, 8], {"reference": {"1": -0.5, "8": -75.0}, "scale": 0.01}).double()
    x = torch.randn(3, irreps.dim, dtype=torch.float64)
    species, molecule = torch.tensor([1, 0, 0]), torch.zeros(3, dtype=torch.long)
    positions = torch.randn(3, 3, dtype=torch.float64)
    a = heads(x, species, positions, molecule, 1)
    b = heads(x, species, positions + 5.0, molecule, 1)
    assert torch.allclose(a["dipole"], b["dipole"], atol=1e-12)
    assert abs(float(a["energy"].detach()) - (-76.0)) < 1.0
