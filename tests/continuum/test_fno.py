"""GFNO and FNO: the spectral layers, exact C(4)/D(4) equivariance, resolution independence, bad input."""
from __future__ import annotations

import pytest
import torch

from equiscale.continuum.evaluate import rotation_equivariance_error
from equiscale.continuum.fno import FNO, GFNO
from equiscale.continuum.models import build_model, count_parameters
from equiscale.continuum.spectral import GroupSpectralConv2d, SpectralConv2d
from equiscale.errors import InvalidArgumentError
from equiscale.groups import C, D
from equiscale.nn.grids import GroupConv2d
from equiscale.testing import GridField, equivariance_error

from tests.continuum.test_models import _max_error


def _band_limited(batch, channels, size, modes, generator, dtype=torch.float64):
    """A real field whose spectrum holds only |ky|, |kx| <= modes, sampled on a size x size grid."""
    k = torch.arange(-modes, modes + 1, dtype=dtype)
    p = torch.arange(size, dtype=dtype) / size
    coefficients = torch.randn(batch, channels, 2 * modes + 1, 2 * modes + 1, 2, dtype=dtype, generator=generator)
    phase = 2 * torch.pi * (k[:, None, None, None] * p[None, None, :, None] + k[None, :, None, None] * p[None, None, None, :])
    return torch.einsum("bcyx,yxij->bcij", coefficients[..., 0], phase.cos()) + torch.einsum(
        "bcyx,yxij->bcij", coefficients[..., 1], phase.sin())


@pytest.mark.parametrize("group", [C(4), D(4), C(2), D(1)])
def test_group_spectral_layer_commutes_with_the_regular_action(group):
    generator = torch.Generator().manual_seed(0)
    layer = GroupSpectralConv2d(2, 3, 4, group).double()
    x = torch.randn(2, 2, group.order, 12, 12, dtype=torch.float64, generator=generator)
    action = GridField(group.regular_representation(), axis=-3)
    with torch.no_grad():
        assert equivariance_error(layer, x, group, action, action, n_samples=12, generator=generator) < 1e-12


def test_group_spectral_layer_is_a_group_convolution_with_a_real_kernel():
    """Against an independent reference: the layer equals a circular GroupConv2d whose kernel is the
    inverse FFT of the layer's Hermitian kernel (real to rounding) placed on the grid."""
    torch.manual_seed(1)
    group, m, n = C(4), 2, 8
    layer = GroupSpectralConv2d(1, 2, m, group).double()
    full = layer.hermitian_kernel().detach()  # (O, I, G, 2m+1, 2m+1), [ky + m, kx + m]
    spectrum = torch.zeros(*full.shape[:3], n, n, dtype=full.dtype)
    rows = torch.arange(-m, m + 1) % n
    spectrum[..., rows[:, None], rows[None, :]] = full
    kernel = torch.fft.ifft2(spectrum)
    assert float(kernel.imag.abs().max()) < 1e-15
    # conv2d correlates: c(q) = k(-q) for q = -n/2..n/2-1 in a kernel of n+1 taps (the last one zero)
    source = (-torch.arange(-n // 2, n // 2)) % n
    correlation = torch.zeros(*kernel.shape[:3], n + 1, n + 1, dtype=torch.float64)
    correlation[..., :n, :n] = kernel.real[..., source[:, None], source[None, :]]
    conv = GroupConv2d(1, 2, n + 1, group, padding=n // 2, padding_mode="circular", bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(correlation)
        x = torch.randn(2, 1, 4, n, n, dtype=torch.float64)
        assert torch.allclose(layer(x), conv(x), atol=1e-12)


def test_spectral_layers_are_resolution_independent():
    """A field with modes <= m gives the same function sampled at 16 and 32 points (and spectral is linear)."""
    generator = torch.Generator().manual_seed(2)
    x16 = _band_limited(1, 2, 16, 3, generator)
    x32 = _band_limited(1, 2, 32, 3, torch.Generator().manual_seed(2))
    assert torch.allclose(x32[..., ::2, ::2], x16, atol=1e-12)
    for layer in (SpectralConv2d(2, 2, 5).double(), GroupSpectralConv2d(1, 1, 5, C(2)).double()):
        with torch.no_grad():
            shape = (1, 1, 2) if isinstance(layer, GroupSpectralConv2d) else (1, 2)
            y16, y32 = layer(x16.reshape(*shape, 16, 16)), layer(x32.reshape(*shape, 32, 32))
        assert torch.allclose(y32[..., ::2, ::2], y16, atol=1e-10)


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_gfno_is_exactly_equivariant_in_float64(group):
    torch.manual_seed(3)
    model = GFNO(group, width=2, layers=2, modes=3, projection=4, field_scale=0.5, delta_scale=1.0).double()
    w = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    assert _max_error(model, w, model.group) < 1e-12
    if group == "D4":
        assert _max_error(model, w, model.group, pseudo=False) > 1e-5  # near-linear at init, still 1e7 above rounding


def test_gfno_float32_and_50_step_rollout():
    torch.manual_seed(4)
    model = GFNO("C4", width=2, layers=2, modes=4, projection=4, delta_scale=0.02)
    w = torch.randn(2, 16, 16)
    assert rotation_equivariance_error(model, w, steps=1) <= 1e-5
    assert rotation_equivariance_error(model, w, steps=50) <= 1e-5
    assert rotation_equivariance_error(model.double(), w.double(), steps=50) <= 1e-10


def test_fno_is_not_equivariant():
    torch.manual_seed(5)
    model = FNO(width=4, layers=2, modes=3, projection=4).double()
    assert _max_error(model, torch.randn(2, 1, 12, 12, dtype=torch.float64), C(4)) > 1e-3


@pytest.mark.parametrize("name", ["gfno", "fno"])
def test_trained_at_64_runs_at_128(name):
    """Same weights at twice the resolution: a band-limited field gives the same prediction, sampled."""
    torch.manual_seed(6)
    model = build_model(name, "C4", blocks=2, modes=6).double()
    w64 = _band_limited(1, 1, 64, 4, torch.Generator().manual_seed(7))
    w128 = _band_limited(1, 1, 128, 4, torch.Generator().manual_seed(7))
    with torch.no_grad():
        y64, y128 = model(w64), model(w128)
    assert y128.shape == (1, 1, 128, 128)
    # the pointwise nonlinearities create modes above m, so only the kept modes match exactly
    low = lambda y: torch.fft.rfft2(y, norm="forward")[..., :7, :7]  # noqa: E731
    assert torch.allclose(low(y128), low(y64), atol=1e-3 * float(low(y64).abs().max()))


def test_fno_twin_matches_parameters_by_default():
    gfno, fno = build_model("gfno", "C4"), build_model("fno", "C4")
    assert abs(count_parameters(fno) - count_parameters(gfno)) / count_parameters(gfno) < 0.05
    assert build_model("fno", "C4", width=32).spectral[0].in_channels == 32
    assert gfno(torch.randn(2, 64, 64)).shape == (2, 64, 64)


@pytest.mark.parametrize("call,message", [
    (lambda: GFNO("C4", 2, 1, 3, 2)(torch.randn(2, 12, 10)), "not square"),
    (lambda: GFNO("C4", 2, 1, 3, 2)(torch.randn(2, 11, 11)), "must be even"),
    (lambda: FNO(2, 1, 3, 2)(torch.randn(2, 11, 11)), "must be even"),
    (lambda: GFNO("C4", 2, 1, 12, 2)(torch.randn(2, 16, 16)), "too few points for 12 Fourier modes"),
    (lambda: FNO(2, 1, 3, 2)(torch.full((1, 8, 8), float("nan"))), "NaN"),
    (lambda: GFNO(C(8), 2, 1, 3, 2), "do not map the grid onto itself"),
    (lambda: SpectralConv2d(2, 2, 0), "modes must be a positive int"),
    (lambda: GroupSpectralConv2d(2, 2, 2, C(4))(torch.randn(1, 2, 3, 8, 8)), "\\(batch, 2, 4, H, W\\)"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(InvalidArgumentError, match=message):
        call()


@pytest.mark.parametrize("name", ["gfno", "gunet"])
@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_d4_rollout_of_50_steps_is_equivariant_with_reflections(name, dtype, tolerance):
    """The whole 50-step rollout under every D(4) element (the pseudo-scalar sign included)."""
    from equiscale.testing import assert_equivariant

    torch.manual_seed(8)
    if name == "gfno":
        model = GFNO("D4", width=1, layers=2, modes=3, projection=2, delta_scale=0.02)
    else:
        from equiscale.continuum.unet import GUNet

        model = GUNet("D4", width=1, multipliers=(1, 2), norm_groups=1, delta_scale=0.02)
    model = model.to(dtype)
    action = GridField(D(4).irrep(1, 0), axis=-3)
    w = torch.randn(1, 1, 12, 12, dtype=dtype)
    def fifty_steps(x):
        for _ in range(50):
            x = model(x)
        return x

    with torch.no_grad():
        assert_equivariant(fifty_steps, w, D(4), action, action, tolerance=tolerance, n_samples=8,
                           generator=torch.Generator().manual_seed(0))
