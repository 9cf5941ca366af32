"""Fluid surrogates: exact C(4)/D(4) equivariance (vorticity as a pseudo-scalar), baselines, errors."""
from __future__ import annotations

import pytest
import torch

from equiscale.continuum.evaluate import rotation_equivariance_error
from equiscale.continuum.models import FluidCNN, FluidGCNN, build_model, cnn_width_matching, count_parameters
from equiscale.continuum.training import transform_fields
from equiscale.groups import C, D
from equiscale.testing import GridField


def _max_error(model, w, group, pseudo=True):
    """max over elements of |f(g.w) - g.f(w)| / max|f(w)|, g acting on (B, 1, H, W) fields."""
    sign = group.irrep(1, 0) if (pseudo and group.name.startswith("D")) else None
    action = GridField(sign, axis=-3)
    with torch.no_grad():
        y = model(w)
        return max(float((model(action.apply(group, g, w, None)) - action.apply(group, g, y, None)).abs().max()
                         / y.abs().max()) for g in group.elements())


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_gcnn_is_exactly_equivariant_in_float64(group):
    torch.manual_seed(0)
    model = FluidGCNN(group, width=2, blocks=1, kernel_size=3, field_scale=2.0, delta_scale=0.1).double()
    w = torch.randn(2, 1, 10, 10, dtype=torch.float64)
    assert _max_error(model, w, model.group) < 1e-12


def test_d4_model_treats_vorticity_as_a_pseudo_scalar():
    """Reflections flip the sign of vorticity: the D(4) model follows that action, not the scalar one."""
    torch.manual_seed(1)
    model = FluidGCNN("D4", width=2, blocks=1, kernel_size=3).double()
    w = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    assert _max_error(model, w, D(4), pseudo=True) < 1e-12
    assert _max_error(model, w, D(4), pseudo=False) > 1e-3
    # transform_fields (the augmentation) implements the same pseudo-scalar action
    for g in range(8):
        expected = GridField(D(4).irrep(1, 0), axis=-3).apply(D(4), torch.tensor(g), w, None)
        assert torch.equal(transform_fields(w, D(4), g), expected)


def test_cnn_is_not_equivariant():
    torch.manual_seed(2)
    model = FluidCNN(width=4, blocks=1, kernel_size=3).double()
    assert _max_error(model, torch.randn(2, 1, 12, 12, dtype=torch.float64), C(4)) > 1e-3


def test_float32_equivariance_error_meets_the_target():
    torch.manual_seed(3)
    w = torch.randn(2, 16, 16)
    gcnn = FluidGCNN("C4", width=4, blocks=1)
    assert rotation_equivariance_error(gcnn, w, steps=1) <= 1e-5
    assert rotation_equivariance_error(gcnn, w, steps=3) <= 1e-5
    assert rotation_equivariance_error(FluidCNN(width=8, blocks=1), w, steps=1) > 1e-3


@pytest.mark.parametrize("group,kernel", [("C4", 5), ("D4", 3)])
def test_baseline_has_about_the_same_parameter_count(group, kernel):
    gcnn = build_model("gcnn", group, kernel_size=kernel)
    cnn = build_model("cnn", group, kernel_size=kernel)
    assert abs(count_parameters(cnn) - count_parameters(gcnn)) / count_parameters(gcnn) < 0.05
    assert cnn_width_matching(count_parameters(FluidCNN(16, 2, 5)), 2, 5) == 16


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_shapes_and_float32_are_kept(group):
    model = FluidGCNN(group, width=2, blocks=1, kernel_size=3)
    assert model(torch.randn(3, 8, 8)).shape == (3, 8, 8)
    y = model(torch.randn(3, 1, 8, 8))
    assert y.shape == (3, 1, 8, 8) and y.dtype == torch.float32


@pytest.mark.parametrize("call,message", [
    (lambda: FluidGCNN("C4", 2, 1, 3)(torch.randn(2, 8, 9)), "not square"),
    (lambda: FluidGCNN("C4", 2, 1, 3)(torch.randn(2, 2, 8, 8)), "\\(B, H, W\\)"),
    (lambda: FluidGCNN("C4", 2, 1, 4), "odd"),
    (lambda: FluidGCNN("X4"), "unknown group"),
    (lambda: build_model("mlp"), "unknown model"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_every_model_name_builds_with_defaults_that_work_at_64():
    """build_model's defaults: each name runs on a 64x64 batch; the equivariant ones are exact in float32."""
    from equiscale.continuum.models import MODELS

    torch.manual_seed(5)
    w = torch.randn(1, 64, 64)
    for name in MODELS:
        model = build_model(name, "C4", delta_scale=0.1)
        assert model(w).shape == (1, 64, 64), name
        if name in ("gcnn", "gunet", "gfno"):
            assert rotation_equivariance_error(model, w, steps=1) <= 1e-5, name


@pytest.mark.parametrize("name", ["gcnn", "cnn", "gunet", "gfno"])
def test_nan_fields_are_refused(name):
    model = build_model(name, "C4", width=2, blocks=1)
    w = torch.randn(1, 32, 32)
    w[0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(w)
