"""Sphere grids (s2_grid, rfft/irfft, ToS2Grid, FromS2Grid): e3nn 0.6's numbers, round trip, rotations."""
import math

import pytest
import torch

from equiscale import o3
from equiscale.errors import InvalidArgumentError
from tests.helpers import default_dtype

e3 = pytest.importorskip("e3nn.o3")

F64 = torch.float64
NORMALIZATIONS = ["component", "norm", "integral"]
# (lmax, res): FFT path (odd res_alpha >= 2 lmax + 1), einsum path (even res_alpha), defaults, aliasing
CASES = [(3, None), (4, (10, 11)), (4, (10, 12)), (3, (12, 5)), (None, 12), (None, (None, 9))]


def _randn(*shape, dtype=F64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


def test_s2_grid_and_harmonics_on_grid_match_e3nn():
    with default_dtype(F64):
        ref = e3.spherical_harmonics_s2_grid(5, 12, 13)
        ref_grid = e3.s2_grid(7, 4)
    out = o3.spherical_harmonics_s2_grid(5, 12, 13, dtype=F64)
    for a, b in zip(out, ref):
        assert a.dtype == F64
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)
    for a, b in zip(o3.s2_grid(7, 4, dtype=F64), ref_grid):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert o3.s2_grid(4, 5)[0].dtype == torch.get_default_dtype()


@pytest.mark.parametrize("lmax, res", [(3, 7), (5, 11), (2, 9)])
def test_rfft_irfft_match_e3nn_and_sha(lmax, res):
    x = _randn(4, 2, res)
    c = _randn(4, 2 * lmax + 1, seed=1)
    with default_dtype(F64):
        ref_r, ref_i = e3.rfft(x, lmax), e3.irfft(c, res)
    torch.testing.assert_close(o3.rfft(x, lmax), ref_r, atol=1e-13, rtol=0)
    torch.testing.assert_close(o3.irfft(c, res), ref_i, atol=1e-13, rtol=0)
    sha = o3.spherical_harmonics_s2_grid(lmax, 2, res, dtype=F64)[3]
    torch.testing.assert_close(o3.rfft(x, lmax), x @ sha, atol=1e-13, rtol=0)
    torch.testing.assert_close(o3.irfft(c, res), c @ sha.T, atol=1e-13, rtol=0)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("lmax, res", CASES)
def test_grids_match_e3nn(lmax, res, normalization):
    with default_dtype(F64):
        ref_to, ref_from = e3.ToS2Grid(lmax, res, normalization), e3.FromS2Grid(res, lmax, normalization)
    to, frm = o3.ToS2Grid(lmax, res, normalization, dtype=F64), o3.FromS2Grid(res, lmax, normalization, dtype=F64)
    for ours, ref in ((to, ref_to), (frm, ref_from)):
        assert (ours.lmax, ours.res_beta, ours.res_alpha) == (ref.lmax, ref.res_beta, ref.res_alpha)
        assert list(ours.state_dict()) == list(ref.state_dict())
        for key, value in ref.state_dict().items():
            assert ours.state_dict()[key].dtype == F64
            torch.testing.assert_close(ours.state_dict()[key], value, atol=1e-13, rtol=0)
        torch.testing.assert_close(ours.grid, ref.grid, atol=1e-15, rtol=0)
    x = _randn(2, 3, to.shb.shape[-1])
    f = _randn(3, frm.res_beta, frm.res_alpha, seed=1)
    with default_dtype(F64):
        ref_x, ref_f = ref_to(x), ref_from(f)
    torch.testing.assert_close(to(x), ref_x, atol=1e-12, rtol=0)
    torch.testing.assert_close(frm(f), ref_f, atol=1e-12, rtol=0)
    # float32: the default-dtype module against e3nn's
    to32, frm32 = o3.ToS2Grid(lmax, res, normalization), o3.FromS2Grid(res, lmax, normalization)
    ref_to32, ref_from32 = e3.ToS2Grid(lmax, res, normalization), e3.FromS2Grid(res, lmax, normalization)
    assert to32.shb.dtype == torch.float32
    torch.testing.assert_close(to32(x.float()), ref_to32(x.float()), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(frm32(f.float()), ref_from32(f.float()), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("lmax, res", [(0, None), (4, None), (6, (14, 13)), (5, (16, 20)), (3, (20, 31))])
def test_round_trip_is_exact_for_band_limited_signals(lmax, res, normalization):
    """res_beta >= 2 (lmax + 1) and res_alpha >= 2 lmax + 1: FromS2Grid inverts ToS2Grid to rounding."""
    x = _randn(5, (lmax + 1) ** 2)
    to, frm = o3.ToS2Grid(lmax, res, normalization, dtype=F64), o3.FromS2Grid(res, lmax, normalization, dtype=F64)
    torch.testing.assert_close(frm(to(x)), x, atol=1e-12, rtol=0)
    to32, frm32 = o3.ToS2Grid(lmax, res, normalization), o3.FromS2Grid(res, lmax, normalization)
    torch.testing.assert_close(frm32(to32(x.float())), x.float(), atol=2e-5, rtol=0)


def test_to_grid_samples_the_harmonics():
    """ToS2Grid with 'integral' evaluates sum_l F^l . Y^l at the grid points (independent reference)."""
    lmax = 4
    to = o3.ToS2Grid(lmax, (10, 9), "integral", dtype=F64)
    x = _randn(3, (lmax + 1) ** 2)
    sh = o3.spherical_harmonics(list(range(lmax + 1)), to.grid, True, normalization="integral")
    torch.testing.assert_close(to(x), torch.einsum("bai,zi->zba", sh, x), atol=1e-13, rtol=0)
    # integral of f g over the sphere from FromS2Grid('integral'): orthonormal harmonics
    frm = o3.FromS2Grid((10, 9), lmax, "integral", dtype=F64)
    torch.testing.assert_close(frm(sh.permute(2, 0, 1)), torch.eye((lmax + 1) ** 2, dtype=F64), atol=1e-12, rtol=0)


def test_grids_are_equivariant():
    """Band-limited: FromS2Grid(samples of f o R^-1) = D(R) F for any rotation; ToS2Grid commutes exactly
    with rotations about y by multiples of 2 pi / res_alpha (a shift of the alpha columns)."""
    lmax = 4
    irreps = o3.Irreps.spherical_harmonics(lmax)
    to = o3.ToS2Grid(lmax, (12, 11), "integral", dtype=F64)
    frm = o3.FromS2Grid((12, 11), lmax, "integral", dtype=F64)
    x = _randn(3, irreps.dim)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        R = o3.rand_matrix(dtype=F64)
    D = irreps.D_from_matrix(R)
    # samples of f o R^-1: evaluate sum F . Y(R^-1 x) at the grid points
    sh = o3.spherical_harmonics(list(range(lmax + 1)), to.grid @ R, True, normalization="integral")
    rotated = torch.einsum("bai,zi->zba", sh, x)
    torch.testing.assert_close(rotated, to(x @ D.T), atol=1e-12, rtol=0)
    torch.testing.assert_close(frm(rotated), x @ D.T, atol=1e-12, rtol=0)
    for k in (1, 4):
        Ry = irreps.D_from_matrix(o3.matrix_y(torch.tensor(2 * math.pi * k / 11, dtype=F64)))
        torch.testing.assert_close(to(x @ Ry.T), to(x).roll(k, dims=-1), atol=1e-12, rtol=0)
        f = _randn(3, 12, 11, seed=2)  # any signal, band-limited or not
        torch.testing.assert_close(frm(f.roll(k, dims=-1)), frm(f) @ Ry.T, atol=1e-12, rtol=0)


def test_normalization_tensor_and_dtype_device():
    n = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    with default_dtype(F64):
        ref = e3.ToS2Grid(2, 6, normalization=n)
    torch.testing.assert_close(o3.ToS2Grid(2, 6, normalization=n, dtype=F64).shb, ref.shb, atol=1e-14, rtol=0)
    m = o3.FromS2Grid(8, 3, dtype=F64, device="cpu")
    assert all(b.dtype == F64 for b in m.state_dict().values())
    assert repr(m) == "FromS2Grid(lmax=3 res=8x7 (beta x alpha))"
    assert o3.ToS2Grid(3).shb.dtype == torch.get_default_dtype()


def test_errors():
    with pytest.raises(InvalidArgumentError, match="res_beta must be even"):
        o3.ToS2Grid(2, 7)
    with pytest.raises(InvalidArgumentError, match="too large for res_beta=6"):
        o3.FromS2Grid(6, 3)
    with pytest.raises(InvalidArgumentError, match="lmax and res are all None"):
        o3.ToS2Grid()
    with pytest.raises(InvalidArgumentError, match="normalization"):
        o3.ToS2Grid(2, normalization="unit")
    with pytest.raises(InvalidArgumentError, match="lmax must be"):
        o3.ToS2Grid(-1)
    with pytest.raises(InvalidArgumentError, match="shape \\(3,\\)"):
        o3.ToS2Grid(2, normalization=torch.ones(2))
    with pytest.raises(InvalidArgumentError, match="res must be odd"):
        o3.irfft(torch.zeros(5), 6)
    with pytest.raises(InvalidArgumentError, match="needs at least 7 samples"):
        o3.rfft(torch.zeros(5), 3)
    with pytest.raises(InvalidArgumentError, match="expects inputs \\(..., 9\\)"):
        o3.ToS2Grid(2)(torch.zeros(2, 4))
    with pytest.raises(InvalidArgumentError, match="expects inputs \\(..., 6, 5\\)"):
        o3.FromS2Grid(6, 2)(torch.zeros(2, 6, 6))
    with pytest.raises(AssertionError):  # e3nn code catches AssertionError
        o3.ToS2Grid(2, 5)


def test_gradients_and_batch_shapes():
    to, frm = o3.ToS2Grid(3, (8, 9), dtype=F64), o3.FromS2Grid((8, 10), 3, dtype=F64)
    x = _randn(2, 16).requires_grad_()
    f = _randn(2, 8, 10, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(to, (x,)) and torch.autograd.gradcheck(frm, (f,))
    assert to(_randn(16)).shape == (8, 9) and to(_randn(2, 3, 0, 16)).shape == (2, 3, 0, 8, 9)
    assert frm(_randn(8, 10)).shape == (16,) and frm(_randn(4, 1, 8, 10)).shape == (4, 1, 16)


def test_a_loaded_state_dict_is_used():
    """The compact contraction reads the shb buffer at each call: loading another one takes effect."""
    ours, other = o3.ToS2Grid(3, 8, "integral", dtype=F64), o3.ToS2Grid(3, 8, "norm", dtype=F64)
    x = _randn(2, 16)
    ours.load_state_dict(other.state_dict())
    torch.testing.assert_close(ours(x), other(x), atol=1e-14, rtol=0)
