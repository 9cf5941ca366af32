"""Group pooling, spatial pooling, upsampling and group-shared normalisation: equivariance and errors."""
from __future__ import annotations

import pytest
import torch

from equiscale.groups import C, D
from equiscale.nn.grids import (GroupAvgPool2d, GroupBatchNorm2d, GroupMaxPool2d, GroupNorm2d, GroupPool,
                                GroupUpsample)

from .conftest import SCALAR, error_at_all_elements, regular


@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("group", [C(4), D(4)], ids=str)
def test_group_pool_gives_invariant_scalars(group, mode):
    torch.manual_seed(0)
    x = torch.randn(2, 3, group.order, 6, 6, dtype=torch.float64)
    pool = GroupPool(mode)
    assert pool(x).shape == (2, 3, 6, 6)
    assert error_at_all_elements(pool, x, group, regular(group), SCALAR) < 1e-14


@pytest.mark.parametrize("layer,size", [
    (GroupMaxPool2d(2), 8), (GroupAvgPool2d(2), 8), (GroupMaxPool2d(3, stride=2, padding=1), 9),
    (GroupAvgPool2d(3, stride=1, padding=1), 7), (GroupUpsample(2), 5), (GroupUpsample(3, "bilinear"), 6),
])
@pytest.mark.parametrize("group", [C(4), D(4)], ids=str)
def test_spatial_pooling_and_upsampling_commute_with_the_group(layer, size, group):
    torch.manual_seed(1)
    x = torch.randn(2, 3, group.order, size, size, dtype=torch.float64)
    assert error_at_all_elements(layer, x, group, regular(group), regular(group)) < 1e-14
    plain = torch.randn(2, 3, size, size, dtype=torch.float64)
    assert error_at_all_elements(layer, plain, group, SCALAR, SCALAR) < 1e-14


@pytest.mark.parametrize("make", [lambda: GroupBatchNorm2d(3), lambda: GroupNorm2d(1, 3), lambda: GroupNorm2d(3, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_norms_share_statistics_across_the_group_axis(make, training):
    torch.manual_seed(2)
    group = D(4)
    norm = make().double()
    with torch.no_grad():  # non-trivial affine parameters and running statistics
        for p in norm.parameters():
            p.uniform_(0.5, 1.5)
        if isinstance(norm, GroupBatchNorm2d):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
    norm.train(training)
    x = 3 * torch.randn(4, 3, group.order, 6, 6, dtype=torch.float64) + 1
    assert error_at_all_elements(norm, x, group, regular(group), regular(group)) < 1e-12


def test_per_element_batch_norm_would_not_be_equivariant():
    torch.manual_seed(3)
    group = C(4)
    x = torch.randn(4, 2, group.order, 6, 6, dtype=torch.float64) * torch.tensor([1.0, 2, 3, 4]).view(1, 1, 4, 1, 1)
    naive = torch.nn.BatchNorm2d(2 * group.order).double().eval()  # running statistics per (channel, g)
    with torch.no_grad():
        naive.running_mean.uniform_(-1, 1)
    fn = lambda t: naive(t.reshape(4, 8, 6, 6)).reshape(t.shape)  # noqa: E731
    assert error_at_all_elements(fn, x, group, regular(group), regular(group)) > 1e-2


def test_signed_pool_projects_onto_the_character():
    group = D(4)
    sign = group.irrep(1, 0)
    x = torch.ones(1, 1, group.order, 2, 2)
    assert torch.allclose(GroupPool("mean", rep=sign)(x), torch.zeros(1, 1, 2, 2))
    x[:, :, group.n:] = -1  # the sign character itself
    assert torch.allclose(GroupPool("mean", rep=sign)(x), torch.ones(1, 1, 2, 2))


@pytest.mark.parametrize("make,shape,message", [
    (lambda: GroupPool("median"), None, "mode"),
    (lambda: GroupPool("max", rep=D(4).irrep(1, 0)), None, "mode='mean'"),
    (lambda: GroupPool("mean", rep=D(4).irrep(1, 1)), None, "1-d"),
    (lambda: GroupPool("mean"), (1, 2, 8, 8), "batch, channels, \\|G\\|"),
    (lambda: GroupPool("mean", rep=D(4).irrep(1, 0)), (1, 1, 4, 3, 3), "group axis"),
    (lambda: GroupMaxPool2d(2), (1, 1, 4, 7, 7), "symmetrically"),
    (lambda: GroupMaxPool2d((2, 3)), None, "equal on both axes"),
    (lambda: GroupUpsample(1.5), None, "scale_factor"),
    (lambda: GroupUpsample(2, "bicubic"), None, "mode"),
    (lambda: GroupBatchNorm2d(2), (1, 2, 8, 8), "batch, channels, \\|G\\|"),
    (lambda: GroupNorm2d(1, 2), (1, 2, 8, 8), "batch, channels, \\|G\\|"),
])
def test_bad_input_is_named(make, shape, message):
    with pytest.raises(ValueError, match=message):
        layer = make()
        layer(torch.randn(*shape))
