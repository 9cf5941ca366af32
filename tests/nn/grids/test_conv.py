"""LiftingConv2d and GroupConv2d: exact C(4)/D(4) equivariance in float64, shapes, bad input."""
from __future__ import annotations

import pytest
import torch

from equiscale.groups import C, D, direct_sum
from equiscale.nn.grids import GroupConv2d, GroupPool, LiftingConv2d
from equiscale.testing import GridField, assert_equivariant

from .conftest import SCALAR, error_at_all_elements, regular

EXACT = [C(4), D(4), C(2), D(2), D(1), C(1)]


@pytest.mark.parametrize("group", EXACT, ids=str)
@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_lifting_conv_equivariant_float64(group, padding_mode):
    torch.manual_seed(0)
    layer = LiftingConv2d(2, 3, 5, group, padding=2, padding_mode=padding_mode, dtype=torch.float64)
    x = torch.randn(2, 2, 12, 12, dtype=torch.float64)
    assert layer(x).shape == (2, 3, group.order, 12, 12)
    assert error_at_all_elements(layer, x, group, SCALAR, regular(group)) < 1e-12


@pytest.mark.parametrize("group", EXACT, ids=str)
@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_group_conv_equivariant_float64(group, padding_mode):
    torch.manual_seed(1)
    layer = GroupConv2d(3, 2, 3, group, padding=1, padding_mode=padding_mode, dtype=torch.float64)
    x = torch.randn(2, 3, group.order, 10, 10, dtype=torch.float64)
    assert layer(x).shape == (2, 2, group.order, 10, 10)
    assert error_at_all_elements(layer, x, group, regular(group), regular(group)) < 1e-12


@pytest.mark.parametrize("group", [C(4), D(4)], ids=str)
@pytest.mark.parametrize("kernel,stride,padding,size", [(4, 1, 0, 9), (3, 2, 1, 9), (5, 2, 0, 11), (2, 2, 0, 8)])
def test_stride_even_kernel_and_valid_padding_keep_equivariance(group, kernel, stride, padding, size):
    torch.manual_seed(2)
    net = torch.nn.Sequential(
        LiftingConv2d(1, 2, kernel, group, stride=stride, padding=padding, dtype=torch.float64),
        GroupConv2d(2, 2, 3, group, padding=1, dtype=torch.float64),
    )
    x = torch.randn(1, 1, size, size, dtype=torch.float64)
    assert error_at_all_elements(net, x, group, SCALAR, regular(group)) < 1e-12


def test_deep_stack_through_the_public_tester():
    torch.manual_seed(3)
    group = D(4)
    net = torch.nn.Sequential(
        LiftingConv2d(1, 4, 5, group, padding=2, padding_mode="circular", dtype=torch.float64), torch.nn.ReLU(),
        GroupConv2d(4, 4, 3, group, padding=1, padding_mode="circular", dtype=torch.float64), torch.nn.ELU(),
        GroupConv2d(4, 1, 3, group, padding=1, padding_mode="circular", dtype=torch.float64), GroupPool("max"),
    )
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    assert_equivariant(net, x, group, GridField(None), GridField(None), n_samples=16, tolerance=1e-12)


def test_pseudo_scalar_input_uses_the_sign_of_reflections():
    torch.manual_seed(4)
    group = D(4)
    sign = group.irrep(1, 0)
    pseudo = GridField(sign, axis=-3)
    layer = LiftingConv2d(1, 3, 3, group, padding=1, in_rep=sign, dtype=torch.float64)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    assert error_at_all_elements(layer, x, group, pseudo, regular(group)) < 1e-12
    # Treating the pseudo-scalar as a plain scalar is wrong: reflections then fail.
    assert error_at_all_elements(layer, x, group, SCALAR, regular(group)) > 1e-2
    net = torch.nn.Sequential(layer, torch.nn.Tanh(), GroupPool("mean", rep=sign))
    three_pseudo = GridField(direct_sum(sign, sign, sign), axis=-3)
    assert error_at_all_elements(net, x, group, pseudo, three_pseudo) < 1e-12
    assert error_at_all_elements(net, x, group, pseudo, SCALAR) > 1e-2


def test_plain_conv_fails_the_same_check():
    """The harness can fail: an unconstrained convolution is far from equivariant."""
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1).double()
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    assert error_at_all_elements(conv, x, C(4), SCALAR, SCALAR) > 1e-2


@pytest.mark.parametrize("make", [
    lambda: LiftingConv2d(1, 2, 3, C(4), padding=1),
    lambda: LiftingConv2d(1, 2, 3, D(4), padding=1, in_rep=D(4).irrep(1, 0)),
    lambda: LiftingConv2d(1, 2, 3, C(8), padding=1),
    lambda: torch.nn.Sequential(LiftingConv2d(1, 2, 3, D(8), padding=1), GroupConv2d(2, 2, 3, D(8), padding=1)),
])
def test_float32_default_and_float64_on_request(make):
    layer = make()
    assert all(t.dtype == torch.float32 for t in list(layer.parameters()) + list(layer.buffers()) if t.is_floating_point())
    assert layer(torch.randn(1, 1, 6, 6)).dtype == torch.float32
    layer = layer.double()
    assert layer(torch.randn(1, 1, 6, 6, dtype=torch.float64)).dtype == torch.float64


def test_float32_equivariance_error_is_at_rounding_level():
    torch.manual_seed(6)
    group = C(4)
    net = torch.nn.Sequential(LiftingConv2d(1, 8, 5, group, padding=2, padding_mode="circular"), torch.nn.ReLU(),
                              GroupConv2d(8, 8, 5, group, padding=2, padding_mode="circular"), GroupPool("mean"))
    x = torch.randn(2, 1, 32, 32)
    assert error_at_all_elements(net, x, group, SCALAR, SCALAR) < 1e-5


@pytest.mark.parametrize("make,shape,message", [
    (lambda: LiftingConv2d(1, 2, 3, C(4)), (1, 1, 8, 9), "not square"),
    (lambda: GroupConv2d(1, 2, 3, C(4)), (1, 1, 3, 8, 8), "group axis"),
    (lambda: GroupConv2d(1, 2, 3, C(4)), (1, 1, 8, 8), "channels, |G|"),
    (lambda: LiftingConv2d(2, 2, 3, C(4)), (1, 1, 8, 8), "channels"),
    (lambda: LiftingConv2d(1, 2, 3, C(4), stride=2), (1, 1, 8, 8), "stride 2"),
    (lambda: LiftingConv2d(1, 2, 5, D(4)), (1, 1, 3, 3), "smaller than the kernel"),
])
def test_bad_input_is_named(make, shape, message):
    with pytest.raises(ValueError, match=message):
        make()(torch.randn(*shape))


def test_rectangular_field_allowed_without_quarter_turns():
    torch.manual_seed(7)
    layer = LiftingConv2d(1, 2, 3, D(2), padding=1, dtype=torch.float64)
    x = torch.randn(1, 1, 6, 9, dtype=torch.float64)
    assert error_at_all_elements(layer, x, D(2), SCALAR, regular(D(2))) < 1e-12


@pytest.mark.parametrize("kwargs,message", [
    ({"kernel_size": 4, "padding": "same"}, "even kernel_size"),
    ({"kernel_size": (3, 5)}, "square"),
    ({"kernel_size": 3, "padding": (1, 2)}, "equal on both axes"),
    ({"kernel_size": 3, "stride": (1, 2)}, "equal on both axes"),
    ({"kernel_size": 3, "padding_mode": "mirror"}, "padding_mode"),
    ({"kernel_size": 3, "padding": "valid!"}, "padding"),
    ({"kernel_size": 3, "in_rep": C(4).regular_representation()}, "1-d representation"),
    ({"kernel_size": 3, "in_rep": D(4).irrep(1, 0)}, "1-d representation of C\\(4\\)"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LiftingConv2d(1, 2, group=C(4), **kwargs)


def test_group_must_be_planar_and_finite():
    from equiscale.groups import SO2

    with pytest.raises(ValueError, match="C\\(n\\) or D\\(n\\)"):
        GroupConv2d(1, 1, 3, SO2())
    with pytest.raises(ValueError, match="in_channels"):
        GroupConv2d(0, 1, 3, C(4))
