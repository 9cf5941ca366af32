"""Wigner-D and Clebsch-Gordan: checked against sympy, scipy and the defining properties.

The sign convention checked here (and documented in ``equiscale.o3._wigner``):
``C[a, b, c] = Re sum Q1[m1, a] Q2[m2, b] conj(Q3[m1 + m2, c]) <l1 m1 l2 m2 | l3 m3> / sqrt(2 l3 + 1)``
with the standard (Condon-Shortley) complex coefficients and ``Q`` the complex-from-real basis
change below (e3nn's, including its ``(-i)^l`` phase).
"""
import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import sympy
import torch
from scipy.spatial.transform import Rotation
from sympy.physics.quantum.cg import CG

from equiscale import o3

F64 = torch.float64
LMAX = 8


def triples(lmax):
    return [(a, b, c) for a, b, c in itertools.product(range(lmax + 1), repeat=3)
            if abs(b - c) <= a <= b + c]


def rotations(n, seed):
    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix())


def near_singular_rotations():
    """Rotations whose Euler angle beta is at or next to 0 or pi, plus pi-rotations."""
    out = []
    for beta in [0.0, 1e-14, 1e-9, 1e-5, math.pi, math.pi - 1e-12, math.pi - 1e-7]:
        out.append(o3.angles_to_matrix(torch.tensor(0.3, dtype=F64), torch.tensor(beta, dtype=F64),
                                       torch.tensor(-1.1, dtype=F64)))
    for axis in [[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 2, 3], [1e-9, 1, 0]]:
        out.append(torch.from_numpy(Rotation.from_rotvec(math.pi * np.array(axis, float)
                                                         / np.linalg.norm(axis)).as_matrix()))
    out.append(torch.eye(3, dtype=F64))
    return torch.stack(out)


# --------------------------------------------------------------------------- sympy reference
def sympy_q(l):
    """Complex-from-real basis change (rows complex m, columns real index), exact."""
    q = sympy.zeros(2 * l + 1, 2 * l + 1)
    h = 1 / sympy.sqrt(2)
    q[l, l] = 1
    for m in range(1, l + 1):
        q[l - m, l + m], q[l - m, l - m] = h, -sympy.I * h
        q[l + m, l + m], q[l + m, l - m] = (-1) ** m * h, sympy.I * (-1) ** m * h
    return q * (-sympy.I) ** l


def sympy_real_cg(l1, l2, l3):
    q1, q2, q3 = sympy_q(l1), sympy_q(l2), sympy_q(l3)
    cg = {}
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            if abs(m1 + m2) <= l3:
                v = CG(l1, m1, l2, m2, l3, m1 + m2).doit()
                if v != 0:
                    cg[m1, m2] = v
    out = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1))
    for a, b, c in itertools.product(range(2 * l1 + 1), range(2 * l2 + 1), range(2 * l3 + 1)):
        s = sum(q1[m1 + l1, a] * q2[m2 + l2, b] * sympy.conjugate(q3[m1 + m2 + l3, c]) * v
                for (m1, m2), v in cg.items())
        s = complex(sympy.N(s, 30))
        assert abs(s.imag) < 1e-25
        out[a, b, c] = s.real / math.sqrt(2 * l3 + 1)
    return out


@pytest.mark.parametrize("ls", [(0, 0, 0), (1, 1, 0), (1, 1, 1), (1, 1, 2), (2, 1, 1), (2, 2, 2),
                                (3, 2, 1), (1, 2, 3), (3, 3, 2), (2, 3, 4)])
def test_wigner_3j_matches_sympy(ls):
    ours = o3.wigner_3j(*ls, dtype=F64).numpy()
    np.testing.assert_allclose(ours, sympy_real_cg(*ls), rtol=0, atol=1e-14)


@pytest.mark.slow
@pytest.mark.parametrize("ls", [(4, 4, 4), (5, 3, 8), (8, 8, 1), (6, 7, 8), (8, 8, 8)])
def test_wigner_3j_matches_sympy_high_l(ls):
    ours = o3.wigner_3j(*ls, dtype=F64).numpy()
    np.testing.assert_allclose(ours, sympy_real_cg(*ls), rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- 3j properties
def test_wigner_3j_invariant_and_normalised():
    R = torch.cat([rotations(2, 0), near_singular_rotations()[1:2]])
    D = o3.Irreps.spherical_harmonics(LMAX, p=1).D_from_matrix(R)
    blocks = [D[:, l * l:(l + 1) ** 2, l * l:(l + 1) ** 2].numpy() for l in range(LMAX + 1)]
    worst = 0.0
    for l1, l2, l3 in triples(LMAX):
        C = o3.wigner_3j(l1, l2, l3, dtype=F64).numpy()
        assert abs((C**2).sum() - 1) < 1e-13
        for d1, d2, d3 in zip(blocks[l1], blocks[l2], blocks[l3]):
            # (D1 x D2)^T C = C D3^T:  C_ijk D1_il D2_jm = C_lmn D3_kn
            left = np.tensordot(d2, np.tensordot(d1, C, (0, 0)), (0, 1)).transpose(1, 0, 2)
            worst = max(worst, np.abs(left - C @ d3.T).max())
    assert worst < 1e-12


def test_wigner_3j_l1_is_levi_civita():
    C = o3.wigner_3j(1, 1, 1, dtype=F64)
    eps = torch.zeros(3, 3, 3, dtype=F64)
    for i, j, k in itertools.permutations(range(3)):
        eps[i, j, k] = np.linalg.det(np.eye(3)[[i, j, k]])
    torch.testing.assert_close(C, eps / math.sqrt(6), atol=1e-15, rtol=0)


def test_wigner_3j_dtype_copy_and_errors():
    assert o3.wigner_3j(1, 1, 2).dtype == torch.get_default_dtype()
    a = o3.wigner_3j(2, 1, 1, dtype=F64)
    a.zero_()
    assert o3.wigner_3j(2, 1, 1, dtype=F64).abs().sum() > 0  # cache not mutated
    for bad in [(1, 1, 3), (0, 1, 2), (-1, 0, 1), (1.0, 1, 1), (True, 1, 1)]:
        with pytest.raises(ValueError):
            o3.wigner_3j(*bad)


# --------------------------------------------------------------------------- generators
def test_generators_commute_and_match_cross_product():
    for l in range(LMAX + 1):
        X = o3.so3_generators(l, dtype=F64)
        torch.testing.assert_close(X, -X.transpose(-1, -2), atol=0, rtol=0)
        for i in range(3):
            j, k = (i + 1) % 3, (i + 2) % 3
            torch.testing.assert_close(X[i] @ X[j] - X[j] @ X[i], X[k], atol=1e-13, rtol=0)
        casimir = sum(X[i] @ X[i] for i in range(3))
        torch.testing.assert_close(casimir, -l * (l + 1) * torch.eye(2 * l + 1, dtype=F64),
                                   atol=1e-12, rtol=0)
    X1 = o3.so3_generators(1, dtype=F64)
    for i, axis in enumerate(np.eye(3)):
        ref = scipy.linalg.logm(Rotation.from_rotvec(axis).as_matrix()).real
        np.testing.assert_allclose(X1[i].numpy(), ref, atol=1e-12)
    for j in [0.5, 1, 1.5, 2]:
        J = o3.su2_generators(j, dtype=torch.complex128)
        torch.testing.assert_close(J[0] @ J[1] - J[1] @ J[0], J[2], atol=1e-13, rtol=0)
    for l in range(4):
        Q = o3.change_basis_real_to_complex(l, dtype=F64)
        assert Q.dtype == torch.complex128
        torch.testing.assert_close(Q.conj().T @ Q, torch.eye(2 * l + 1, dtype=Q.dtype))


# --------------------------------------------------------------------------- Wigner-D
def test_D_equals_expm_of_generators():
    alpha, beta, gamma = (torch.tensor(x, dtype=F64) for x in (0.7, 2.1, -2.9))
    for l in range(LMAX + 1):
        X = o3.so3_generators(l, dtype=F64).numpy()
        ref = (scipy.linalg.expm(alpha.item() * X[1]) @ scipy.linalg.expm(beta.item() * X[0])
               @ scipy.linalg.expm(gamma.item() * X[1]))
        np.testing.assert_allclose(o3.wigner_D(l, alpha, beta, gamma).numpy(), ref, atol=1e-13)


def test_D1_is_R_and_D0_is_one():
    R = torch.cat([rotations(5, 1), near_singular_rotations()])
    torch.testing.assert_close(o3.Irrep("1o").D_from_matrix(R), R, atol=0, rtol=0)
    torch.testing.assert_close(o3.Irrep("0e").D_from_matrix(R), torch.ones(len(R), 1, 1, dtype=F64))


def test_homomorphism_orthogonality_including_near_singular():
    singular = near_singular_rotations()
    R1 = torch.cat([rotations(20, 2), singular, singular])
    R2 = torch.cat([rotations(20, 3), rotations(len(singular), 4), singular.flip(0)])
    irreps = o3.Irreps.spherical_harmonics(LMAX)
    D1, D2, D12 = irreps.D_from_matrix(R1), irreps.D_from_matrix(R2), irreps.D_from_matrix(R1 @ R2)
    assert (D12 - D1 @ D2).abs().max().item() <= 1e-12
    eye = torch.eye(irreps.dim, dtype=F64)
    assert (D1 @ D1.transpose(-1, -2) - eye).abs().max().item() <= 1e-12
    torch.testing.assert_close(irreps.D_from_matrix(R1.transpose(-1, -2)), D1.transpose(-1, -2),
                               atol=1e-13, rtol=0)


@pytest.mark.parametrize("t", [1e-6, 0.3, 1.0, 2.5, math.pi - 1e-6, math.pi])
def test_character(t):
    axes = np.random.default_rng(5).normal(size=(4, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    R = torch.from_numpy(Rotation.from_rotvec(t * axes).as_matrix())
    for l in range(LMAX + 1):
        tr = o3.Irrep(l, 1).D_from_matrix(R).diagonal(dim1=-2, dim2=-1).sum(-1)
        ref = math.sin((2 * l + 1) * t / 2) / math.sin(t / 2)
        assert (tr - ref).abs().max().item() < 1e-12


def test_parity():
    R = rotations(4, 6)
    for l in range(5):
        for p in (1, -1):
            ir = o3.Irrep(l, p)
            torch.testing.assert_close(ir.D_from_matrix(-R), p * ir.D_from_matrix(R), atol=0, rtol=0)
    mirror = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=F64))  # det -1
    signs = torch.tensor([1, -1, -1, 1], dtype=F64)[:, None, None]
    M1, M2 = signs * R, mirror @ R.flip(0)
    irreps = o3.Irreps("0e + 0o + 1o + 1e + 2e + 2o + 3o")
    torch.testing.assert_close(irreps.D_from_matrix(M1 @ M2),
                               irreps.D_from_matrix(M1) @ irreps.D_from_matrix(M2), atol=1e-13, rtol=0)


def test_dtypes_and_float32_accuracy():
    R64 = rotations(10, 7)
    R32 = R64.float()
    for l in [0, 1, 2, 5]:
        d32 = o3.Irrep(l, 1).D_from_matrix(R32)
        assert d32.dtype == torch.float32
        assert (d32.double() - o3.Irrep(l, 1).D_from_matrix(R64)).abs().max() < 2e-5
    a = torch.tensor([0.1, 0.2], dtype=F64)
    assert o3.wigner_D(3, a, a, a).dtype == F64
    assert o3.wigner_D(3, a.float(), a.float(), a.float()).dtype == torch.float32
    assert o3.wigner_D(2, 0.1, 0.2, 0.3).shape == (5, 5)


def test_gradients_are_finite_and_correct():
    R = torch.stack([torch.eye(3, dtype=F64), rotations(1, 8)[0]]).requires_grad_(True)
    o3.Irreps.spherical_harmonics(4).D_from_matrix(R).pow(3).sum().backward()
    assert torch.isfinite(R.grad).all()
    angles = tuple(torch.tensor([x], dtype=F64, requires_grad=True) for x in (0.4, 1.3, -0.6))
    assert torch.autograd.gradcheck(lambda a, b, c: o3.wigner_D(3, a, b, c), angles)


def test_batch_shapes_and_bad_input():
    R = rotations(6, 9).reshape(2, 3, 3, 3)
    assert o3.Irrep(2, 1).D_from_matrix(R).shape == (2, 3, 5, 5)
    assert o3.Irreps("2x1o + 3e").D_from_matrix(R[:0]).shape == (0, 3, 13, 13)
    with pytest.raises(ValueError, match="orthogonal"):
        o3.Irrep(2, 1).D_from_matrix(1.01 * R)
    with pytest.raises(ValueError, match="shape"):
        o3.Irrep(2, 1).D_from_matrix(torch.eye(4, dtype=F64))
    with pytest.raises(ValueError):
        o3.wigner_D(-1, torch.zeros(()), torch.zeros(()), torch.zeros(()))


def test_no_function_changes_default_dtype():
    for default in (torch.float32, torch.float64):
        before = torch.get_default_dtype()
        torch.set_default_dtype(default)
        try:
            x = torch.tensor(0.3, dtype=F64)
            o3.wigner_3j(2, 2, 2)
            o3.wigner_3j(3, 2, 1, dtype=F64)
            o3.wigner_D(2, x, x, x)
            o3.so3_generators(2), o3.su2_generators(1), o3.change_basis_real_to_complex(2)
            R = o3.rand_matrix(3, dtype=F64)
            o3.Irreps("0e + 1o + 2e").D_from_matrix(R)
            o3.Irrep("3o").D_from_angles(x, x, x)
            o3.Irrep("2e").D_from_quaternion(o3.rand_quaternion(2, dtype=F64))
            o3.Irreps("1e").D_from_axis_angle(*o3.rand_axis_angle(2, dtype=F64))
            o3.matrix_to_angles(R), o3.matrix_to_quaternion(R), o3.matrix_to_axis_angle(R)
            assert torch.get_default_dtype() == default
        finally:
            torch.set_default_dtype(before)
