"""GUNet and UNet: exact C(4)/D(4) equivariance (vorticity a pseudo-scalar), rollouts, twins, bad input."""
from __future__ import annotations

import pytest
import torch

from equiscale.continuum.evaluate import rotation_equivariance_error
from equiscale.continuum.models import build_model, count_parameters
from equiscale.continuum.unet import GUNet, UNet
from equiscale.errors import InvalidArgumentError
from equiscale.groups import C, D
from equiscale.testing import GridField, equivariance_error

from tests.continuum.test_models import _max_error


def _small(group="C4", **kw):
    options = {"width": 2, "multipliers": (1, 2), "blocks": 1, "kernel_size": 3, "norm_groups": 2,
               "field_scale": 2.0, "delta_scale": 0.1}
    return GUNet(group, **{**options, **kw})


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_gunet_is_exactly_equivariant_in_float64(group):
    torch.manual_seed(0)
    model = _small(group).double()
    w = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    assert _max_error(model, w, model.group) < 1e-12


def test_gunet_three_levels_with_the_testing_helper():
    """Two halvings (12 -> 6 -> 3): pooling and upsampling commute with the group on each level."""
    torch.manual_seed(1)
    model = _small("D4", multipliers=(1, 2, 2)).double()
    w = torch.randn(3, 1, 12, 12, dtype=torch.float64)
    action = GridField(D(4).irrep(1, 0), axis=-3)
    generator = torch.Generator().manual_seed(0)
    assert equivariance_error(model, w, D(4), action, action, n_samples=16, generator=generator) < 1e-12
    # the scalar action is not the model's symmetry under reflections
    scalar = GridField(None)
    assert equivariance_error(model, w, D(4), scalar, scalar, n_samples=16, generator=generator) > 1e-3


def test_gunet_float32_and_50_step_rollout():
    torch.manual_seed(2)
    model = _small("C4", delta_scale=0.02)
    w = torch.randn(2, 16, 16)
    assert rotation_equivariance_error(model, w, steps=1) <= 1e-5
    assert rotation_equivariance_error(model, w, steps=50) <= 1e-5
    assert rotation_equivariance_error(model.double(), w.double(), steps=50) <= 1e-10


def test_gunet_takes_other_groups_through_steerable_kernels():
    """C(8): its quarter turns are exact on the grid (the 45-degree ones only approximate)."""
    torch.manual_seed(3)
    model = _small(C(8), width=1).double()
    w = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        y = model(w)
        rotated = model(torch.rot90(w, 1, dims=(-1, -2)))
    assert float((rotated - torch.rot90(y, 1, dims=(-1, -2))).abs().max() / y.abs().max()) < 1e-10


def test_unet_is_not_equivariant_and_keeps_shapes():
    torch.manual_seed(4)
    model = UNet(4, (1, 2), 1, 3, 2).double()
    assert _max_error(model, torch.randn(2, 1, 12, 12, dtype=torch.float64), C(4)) > 1e-3
    assert UNet(4, (1, 2), 1, 3, 2)(torch.randn(3, 8, 8)).shape == (3, 8, 8)
    y = _small()(torch.randn(3, 1, 8, 8))
    assert y.shape == (3, 1, 8, 8) and y.dtype == torch.float32


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_unet_twin_matches_parameters_by_default_and_channels_on_request(group):
    gunet, unet = build_model("gunet", group), build_model("unet", group)
    assert abs(count_parameters(unet) - count_parameters(gunet)) / count_parameters(gunet) < 0.05  # one channel more or less moves it ~8%
    order = 4 if group == "C4" else 8
    equal = build_model("unet", group, width=8 * order)
    assert equal.width == 8 * order and count_parameters(equal) > 3 * count_parameters(gunet)
    assert build_model("gunet", group)(torch.randn(1, 64, 64)).shape == (1, 64, 64)


@pytest.mark.parametrize("call,message", [
    (lambda: _small()(torch.randn(2, 8, 10)), "not square"),
    (lambda: _small(multipliers=(1, 2, 2))(torch.randn(2, 10, 10)), "divisible by 4"),
    (lambda: _small(multipliers=(1, 2, 2, 2))(torch.randn(2, 16, 16)), "at least kernel_size=3"),
    (lambda: _small()(torch.full((2, 8, 8), float("nan"))), "NaN"),
    (lambda: _small(kernel_size=4), "odd"),
    (lambda: _small(width=0), "positive"),
    (lambda: build_model("gunet", "X4"), "unknown group"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_input_is_our_error():
    with pytest.raises(InvalidArgumentError):
        _small()(torch.randn(2, 6, 6).fill_(float("inf")))
