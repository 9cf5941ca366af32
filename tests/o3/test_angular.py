"""Angular harmonics (Legendre, spherical_harmonics_alpha[_beta]) against e3nn 0.6 and our own harmonics."""
import math

import pytest
import torch

from equiscale import o3
from equiscale.errors import InvalidArgumentError
from tests.helpers import default_dtype

e3 = pytest.importorskip("e3nn.o3")

F64 = torch.float64


def _angles(n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    alpha = (torch.rand(n, generator=g, dtype=F64) * 4 - 2) * math.pi
    beta = torch.rand(n, generator=g, dtype=F64) * math.pi
    return alpha.to(dtype), beta.to(dtype)


@pytest.mark.parametrize("ls", [[0], [3], [0, 1, 2, 3, 4, 5, 6], [2, 0, 2, 5]])
def test_legendre_matches_e3nn_float64(ls):
    _, beta = _angles(64, F64)
    # also y of either sign: both are polynomials in (z, y)
    z, y = beta.cos(), beta.sin() * torch.where(torch.arange(64) % 2 == 0, 1.0, -1.0).to(F64)
    with default_dtype(F64):
        ref = e3.Legendre(ls)(z, y)
    out = o3.Legendre(ls)(z, y)
    assert out.shape == ref.shape and out.dtype == F64
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    assert o3.Legendre(ls).state_dict() == {}


def test_legendre_float32_and_broadcast():
    _, beta = _angles(20, torch.float32)
    ref = e3.Legendre([0, 1, 2, 3])(beta.cos(), beta.sin())
    out = o3.Legendre([0, 1, 2, 3])(beta.cos(), beta.sin())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    z = torch.rand(3, 1, dtype=F64)
    assert o3.Legendre([1, 2])(z, (1 - z ** 2).sqrt().expand(3, 4)).shape == (3, 4, 8)
    assert o3.Legendre([]).forward(z, z).shape == (3, 1, 0)


@pytest.mark.parametrize("l", [0, 1, 5])
def test_spherical_harmonics_alpha_matches_e3nn(l):
    alpha, _ = _angles(30, F64)
    with default_dtype(F64):
        ref = e3.spherical_harmonics_alpha(l, alpha)
    torch.testing.assert_close(o3.spherical_harmonics_alpha(l, alpha), ref, atol=1e-14, rtol=0)
    alpha32 = alpha.float()
    torch.testing.assert_close(o3.spherical_harmonics_alpha(l, alpha32), e3.spherical_harmonics_alpha(l, alpha32))


@pytest.mark.parametrize("normalization", ["integral", "component", "norm"])
@pytest.mark.parametrize("l", [4, [0, 1, 2, 3, 4, 5, 6], "2x0e+1x1o+2x3e"])
def test_spherical_harmonics_alpha_beta_matches_e3nn(l, normalization):
    alpha, beta = _angles(40, F64, seed=1)
    with default_dtype(F64):
        ref = e3.spherical_harmonics_alpha_beta(e3.Irreps(l) if isinstance(l, str) else l, alpha, beta,
                                                normalization=normalization)
    out = o3.spherical_harmonics_alpha_beta(l, alpha, beta, normalization=normalization)
    assert out.dtype == F64
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    a32, b32 = alpha.float(), beta.float()
    ref32 = e3.spherical_harmonics_alpha_beta(e3.Irreps(l) if isinstance(l, str) else l, a32, b32,
                                              normalization=normalization)
    out32 = o3.spherical_harmonics_alpha_beta(l, a32, b32, normalization=normalization)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, ref32, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("normalization", ["integral", "component", "norm"])
def test_alpha_beta_equals_our_harmonics_at_high_degree(normalization):
    """Independent of e3nn (whose monomial sums lose digits as l grows): l up to 20 in float64."""
    alpha, beta = _angles(50, F64, seed=2)
    ls = list(range(21))
    out = o3.SphericalHarmonicsAlphaBeta(ls, normalization)(alpha, beta)
    ref = o3.spherical_harmonics(ls, o3.angles_to_xyz(alpha, beta), True, normalization=normalization)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


def test_angular_errors():
    with pytest.raises(InvalidArgumentError, match="normalization"):
        o3.SphericalHarmonicsAlphaBeta(2, normalization="unit")
    with pytest.raises(InvalidArgumentError, match="degrees"):
        o3.Legendre([1, -2])
    with pytest.raises(InvalidArgumentError, match="l must be"):
        o3.spherical_harmonics_alpha(-1, torch.zeros(2))
