"""Tests of equiscale.o3.spherical_harmonics against independent references.

References: scipy's complex harmonics converted to e3nn's real basis, the addition theorem
(scipy's Legendre polynomials), quadrature orthonormality, e3nn 0.6 (test-only), and Wigner-D
equivariance. Both internal paths are covered: the kernel with its hand-written backward, and the plain-op
recurrence that autograd differentiates when a second derivative is asked for.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch

from tests.helpers import default_dtype

from equiscale.o3 import SphericalHarmonics, spherical_harmonics

e3nn_o3 = pytest.importorskip("e3nn.o3")

NORMALIZATIONS = ["integral", "component", "norm"]
LMAX_TESTED = 16


def _unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _vectors_near_unit(n: int, seed: int = 0) -> torch.Tensor:
    """float64 vectors with norms in [0.7, 1.3] (keeps |x|^l of order one for unnormalised tests)."""
    rng = np.random.default_rng(seed)
    return torch.tensor(_unit_vectors(n, seed) * rng.uniform(0.7, 1.3, size=(n, 1)))


def _scipy_real_harmonics(l: int, v: np.ndarray) -> np.ndarray:
    """Real harmonics of degree l at unit vectors v (n, 3), "integral" normalisation, e3nn basis.

    e3nn's polar axis is y and the azimuth is measured from z towards x: theta = arccos(y),
    phi = atan2(x, z). scipy's complex Y_l^m includes the Condon-Shortley phase (-1)^m; e3nn's real
    basis has none, so for m > 0 the real harmonic is sqrt(2) (-1)^m Re Y_l^m, for m < 0 it is
    sqrt(2) (-1)^m Im Y_l^|m|, and Y_l^0 for m = 0 (index l + m in the block).
    """
    x, y, z = v.T
    theta = np.arccos(np.clip(y, -1.0, 1.0))
    phi = np.arctan2(x, z)
    if hasattr(scipy.special, "sph_harm_y"):
        def complex_y(m):
            return scipy.special.sph_harm_y(l, m, theta, phi)
    else:  # scipy < 1.15: sph_harm(m, l, azimuth, polar)
        def complex_y(m):
            return scipy.special.sph_harm(m, l, phi, theta)
    columns = []
    for m in range(-l, l + 1):
        c = complex_y(abs(m))
        if m > 0:
            columns.append(math.sqrt(2) * (-1) ** m * c.real)
        elif m < 0:
            columns.append(math.sqrt(2) * (-1) ** m * c.imag)
        else:
            columns.append(c.real)
    return np.stack(columns, axis=-1)


def _e3nn(l, x, normalize, normalization):
    """e3nn's value in float64: e3nn builds constants in the default dtype, so set it locally."""
    with default_dtype(torch.float64):
        return e3nn_o3.spherical_harmonics(l, x, normalize, normalization=normalization)


# ------------------------------------------------------------------ values against references
@pytest.mark.parametrize("l", range(LMAX_TESTED + 1))
def test_matches_scipy(l):
    v = _unit_vectors(64, seed=l)
    ours = spherical_harmonics(l, torch.tensor(v), normalize=False).numpy()
    ref = _scipy_real_harmonics(l, v)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("l", range(LMAX_TESTED + 1))
def test_addition_theorem(l):
    a = torch.tensor(_unit_vectors(40, seed=1))
    b = torch.tensor(_unit_vectors(40, seed=2))
    ya = spherical_harmonics(l, a * 2.5, normalize=True)  # normalize=True must project first
    yb = spherical_harmonics(l, b, normalize=True)
    lhs = (ya * yb).sum(-1).numpy()
    rhs = (2 * l + 1) / (4 * math.pi) * scipy.special.eval_legendre(l, (a * b).sum(-1).numpy())
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-12)


def test_orthonormal_by_quadrature():
    lmax = LMAX_TESTED
    nodes, weights = np.polynomial.legendre.leggauss(lmax + 1)  # exact for degree 2 lmax + 1 in cos
    n_phi = 2 * lmax + 1
    phi = 2 * math.pi * np.arange(n_phi) / n_phi
    cos_t, ph = np.meshgrid(nodes, phi, indexing="ij")
    sin_t = np.sqrt(1 - cos_t**2)
    # polar axis y, azimuth from z towards x
    v = np.stack([sin_t * np.sin(ph), cos_t, sin_t * np.cos(ph)], axis=-1).reshape(-1, 3)
    w = (weights[:, None] * np.full(n_phi, 2 * math.pi / n_phi)[None, :]).reshape(-1)
    y = spherical_harmonics(list(range(lmax + 1)), torch.tensor(v), normalize=True).numpy()
    gram = (y * w[:, None]).T @ y
    np.testing.assert_allclose(gram, np.eye((lmax + 1) ** 2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_e3nn_float64(normalization, normalize):
    x = _vectors_near_unit(50, seed=3)
    x[0] = 0.0  # the zero vector
    for ls in [0, 3, [0, 1, 2], list(range(12)), [5, 2, 2, 11], [7, 1]]:
        ours = spherical_harmonics(ls, x, normalize, normalization=normalization)
        ref = _e3nn(ls, x, normalize, normalization)
        assert ours.dtype == torch.float64
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("lmax", [1, 4, 8])
def test_matches_e3nn_float32(lmax):
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    ours = spherical_harmonics(list(range(lmax + 1)), x, True)
    ref = e3nn_o3.spherical_harmonics(list(range(lmax + 1)), x.double(), True).float()
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=0, atol=2e-5)


@pytest.mark.parametrize("irreps", ["0e + 1o + 2e", "1e + 2e", "2x1o + 0e + 3o", "1x1e", "3e + 0e"])
def test_irreps_and_module_match_e3nn(irreps):
    x = _vectors_near_unit(20, seed=4)
    ref_module = e3nn_o3.SphericalHarmonics(irreps, normalize=True)
    ours_module = SphericalHarmonics(irreps, normalize=True)
    assert str(ours_module.irreps_out) == str(ref_module.irreps_out)
    assert str(ours_module.irreps_in) == str(ref_module.irreps_in)
    torch.testing.assert_close(ours_module(x), _e3nn(irreps, x, True, "integral"), rtol=0, atol=1e-10)
    torch.testing.assert_close(spherical_harmonics(irreps, x, True), ours_module(x), rtol=0, atol=0)


def test_accepts_irreps_objects():
    from equiscale.o3 import Irreps

    x = _vectors_near_unit(10)
    ours = spherical_harmonics(Irreps("0e + 1o + 2e"), x, True)
    torch.testing.assert_close(ours, spherical_harmonics([0, 1, 2], x, True), rtol=0, atol=0)
    # an e3nn Irreps object also works (duck-typed)
    ours_e3nn_irreps = spherical_harmonics(e3nn_o3.Irreps("1e + 2e"), x, True)
    torch.testing.assert_close(ours_e3nn_irreps, spherical_harmonics([1, 2], x, True), rtol=0, atol=0)


# ------------------------------------------------------------------ equivariance
@pytest.mark.parametrize("l", range(LMAX_TESTED + 1))
@pytest.mark.parametrize("normalize", [True, False])
def test_equivariance(l, normalize):
    from equiscale.o3 import Irrep, rand_matrix

    torch.manual_seed(l)
    R = rand_matrix(dtype=torch.float64)
    D = Irrep(l, 1).D_from_matrix(R)
    x = _vectors_near_unit(30, seed=l)
    lhs = spherical_harmonics(l, x @ R.T, normalize)
    rhs = spherical_harmonics(l, x, normalize) @ D.T
    torch.testing.assert_close(lhs, rhs, rtol=0, atol=1e-10)


def test_parity():
    x = _vectors_near_unit(10)
    ls = list(range(LMAX_TESTED + 1))
    signs = torch.cat([torch.full((2 * l + 1,), (-1.0) ** l, dtype=torch.float64) for l in ls])
    torch.testing.assert_close(spherical_harmonics(ls, -x, True), signs * spherical_harmonics(ls, x, True),
                               rtol=0, atol=1e-12)


def test_l1_is_the_vector():
    x = _vectors_near_unit(10)
    torch.testing.assert_close(spherical_harmonics(1, x, False, "component"), math.sqrt(3) * x, rtol=0, atol=1e-14)


# ------------------------------------------------------------------ dtype, shapes, global state
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lmax", [3, 13])
def test_dtype_preserved_and_default_untouched(dtype, lmax):
    before = torch.get_default_dtype()
    x = torch.randn(7, 3, dtype=dtype)
    y = spherical_harmonics(list(range(lmax + 1)), x, True)
    assert y.dtype == dtype and y.shape == (7, (lmax + 1) ** 2)
    assert torch.get_default_dtype() == before


def test_float64_is_float64_accurate():
    v = _unit_vectors(64, seed=7)
    for l in [2, 8, LMAX_TESTED]:
        ours = spherical_harmonics(l, torch.tensor(v), normalize=True).numpy()
        np.testing.assert_allclose(ours, _scipy_real_harmonics(l, v), rtol=0, atol=1e-13)
        ours32 = spherical_harmonics(l, torch.tensor(v, dtype=torch.float32), normalize=True)
        np.testing.assert_allclose(ours32.double().numpy(), _scipy_real_harmonics(l, v), rtol=0, atol=2e-5)


def test_half_precision_computed_in_float32():
    x = torch.randn(8, 3)
    y = spherical_harmonics([0, 1, 2], x.to(torch.bfloat16), True)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), spherical_harmonics([0, 1, 2], x.to(torch.bfloat16).float(), True),
                               rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("shape", [(3,), (4, 3), (2, 5, 3), (0, 3)])
def test_batch_shapes(shape):
    x = torch.randn(shape, dtype=torch.float64)
    y = spherical_harmonics([0, 1, 2], x, True)
    assert y.shape == shape[:-1] + (9,)
    if x.numel():
        torch.testing.assert_close(y.reshape(-1, 9), spherical_harmonics([0, 1, 2], x.reshape(-1, 3), True))


def test_non_contiguous_input():
    x = torch.randn(3, 10, dtype=torch.float64).t()[:, :3]
    torch.testing.assert_close(spherical_harmonics(4, x, True), spherical_harmonics(4, x.contiguous(), True),
                               rtol=0, atol=0)


# ------------------------------------------------------------------ zero vectors and gradients
@pytest.mark.parametrize("lmax", [2, 13])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_vector_finite(lmax, dtype):
    x = torch.zeros(3, 3, dtype=dtype)
    x[1] = torch.tensor([0.3, -0.2, 0.9])
    x.requires_grad_(True)
    for normalize in (True, False):
        y = spherical_harmonics(list(range(lmax + 1)), x, normalize, "component")
        assert torch.isfinite(y).all()
        assert y[0, 0] == 1 and (y[0, 1:] == 0).all()
        (grad,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x)
        assert torch.isfinite(grad).all()


def test_zero_vector_gradient_matches_e3nn():
    x = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 9, dtype=torch.float64)
    (ours,) = torch.autograd.grad((spherical_harmonics([0, 1, 2], x, True) * weights).sum(), x)
    (ref,) = torch.autograd.grad((_e3nn([0, 1, 2], x, True, "integral") * weights).sum(), x)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("ls", [[0], [0, 1, 2, 3], [4, 1], [13]])
@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck_and_gradgradcheck(ls, normalize):
    x = _vectors_near_unit(3, seed=5).requires_grad_(True)
    # a fixed random projection of the outputs keeps gradgradcheck's Jacobians small
    projection = torch.randn(sum(2 * l + 1 for l in ls), 3, dtype=torch.float64,
                             generator=torch.Generator().manual_seed(0))

    def f(v):
        return spherical_harmonics(ls, v, normalize, "component") @ projection

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_gradient_matches_e3nn():
    x = _vectors_near_unit(30, seed=6).requires_grad_(True)
    for normalize in (True, False):
        weights = torch.randn(30, 36, dtype=torch.float64)
        (ours,) = torch.autograd.grad((spherical_harmonics(list(range(6)), x, normalize) * weights).sum(), x)
        (ref,) = torch.autograd.grad((_e3nn(list(range(6)), x, normalize, "integral") * weights).sum(), x)
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


# ------------------------------------------------------------------ bad input
def test_bad_input_raises():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="shape"):
        spherical_harmonics(2, torch.randn(5, 4), True)
    with pytest.raises(ValueError, match="shape"):
        spherical_harmonics(2, torch.tensor(1.0), True)
    with pytest.raises(ValueError, match="normalization"):
        spherical_harmonics(2, x, True, normalization="unit")
    with pytest.raises(ValueError, match="normalization"):
        SphericalHarmonics(2, True, normalization="bad")
    with pytest.raises(ValueError, match=">= 0"):
        spherical_harmonics(-1, x, True)
    with pytest.raises(ValueError, match="integer"):
        spherical_harmonics(1.5, x, True)
    with pytest.raises(ValueError, match="empty"):
        spherical_harmonics([], x, True)
    with pytest.raises(ValueError, match="floating"):
        spherical_harmonics(2, torch.ones(5, 3, dtype=torch.long), True)
    with pytest.raises(ValueError, match="parity"):
        spherical_harmonics("0o", x, True)
    with pytest.raises(ValueError, match="parity"):
        spherical_harmonics("1e + 2o", x, True)
    with pytest.raises(ValueError, match="pseudovector"):
        SphericalHarmonics([1, 2], True, irreps_in="2x1o")


@pytest.mark.parametrize("ls", [list(range(7)), [13, 2]])
@pytest.mark.parametrize("normalize", [True, False])
def test_many_points_match_the_plain_recurrence(ls, normalize):
    """Enough points that the CPU kernel works in several chunks (and a partial last one)."""
    from equiscale.o3._sh_recurrence import spherical_harmonics_recurrence

    x = _vectors_near_unit(12001, seed=8)
    x[17] = 0.0
    x.requires_grad_(True)
    weights = torch.randn(12001, sum(2 * l + 1 for l in ls), dtype=torch.float64)
    y = spherical_harmonics(ls, x, normalize, "component")
    (grad,) = torch.autograd.grad((y * weights).sum(), x)
    u = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12) if normalize else x
    y_ref = spherical_harmonics_recurrence(ls, u, "component")
    (grad_ref,) = torch.autograd.grad((y_ref * weights).sum(), x)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-11)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-9)


@pytest.mark.slow
def test_torch_compile_traces_the_plain_path():
    """Under torch.compile the plain-op recurrence is traced (the eager kernel is opaque to dynamo)."""
    x = torch.randn(300, 3, requires_grad=True)
    x.data[0] = 0.0

    def f(v):
        return spherical_harmonics([0, 1, 2, 3], 2.0 * v, True, "norm")

    compiled = torch.compile(f, dynamic=True)
    weights = torch.randn(300, 16)
    (grad,) = torch.autograd.grad((compiled(x) * weights).sum(), x)
    (grad_ref,) = torch.autograd.grad((f(x) * weights).sum(), x)
    torch.testing.assert_close(compiled(x), f(x), rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-4)
