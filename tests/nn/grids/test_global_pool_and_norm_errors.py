"""GroupGlobalPool (invariant features for a classifier), the norms' channel-count messages, the filter
cache under torch.compile."""
from __future__ import annotations

import pytest
import torch

from equiscale.errors import InvalidArgumentError
from equiscale.groups import C, D
from equiscale.nn.grids import GroupBatchNorm2d, GroupConv2d, GroupGlobalPool, GroupNorm2d, LiftingConv2d
from equiscale.testing import GridField

from .conftest import error_at_all_elements, regular


@pytest.mark.parametrize("spatial", ["mean", "max"])
@pytest.mark.parametrize("mode", ["mean", "max"])
@pytest.mark.parametrize("group", [C(4), D(4)], ids=str)
def test_global_pool_is_invariant(group, mode, spatial):
    torch.manual_seed(0)
    x = torch.randn(2, 3, group.order, 7, 7, dtype=torch.float64)
    pool = GroupGlobalPool(spatial, mode)
    y = pool(x)
    assert y.shape == (2, 3)
    invariant = lambda t: pool(t)[..., None, None, None]  # noqa: E731  (as a field that cannot move)
    assert error_at_all_elements(invariant, x, group, regular(group), GridField(None)) < 1e-14
    reference = x.amax((-2, -1)) if spatial == "max" else x.mean((-2, -1))
    assert torch.allclose(y, reference.amax(-1) if mode == "max" else reference.mean(-1))


def test_global_pool_with_a_character_gives_a_pseudo_scalar():
    group = D(4)
    sign = group.irrep(1, 0)
    torch.manual_seed(1)
    x = torch.randn(2, 3, group.order, 6, 6, dtype=torch.float64)
    pool = GroupGlobalPool("mean", "mean", rep=sign)
    assert float(pool(x).abs().min()) > 1e-6
    for g in group.elements():
        moved = regular(group).apply(group, g, x, None)
        assert torch.allclose(pool(moved), float(sign(g)[0, 0]) * pool(x), atol=1e-14)


def test_invariant_classifier_from_the_public_layers():
    """Lift, group conv, global pool, linear: the logits do not change under any element of D(4)."""
    torch.manual_seed(2)
    group = D(4)
    net = torch.nn.Sequential(LiftingConv2d(1, 4, 3, group, padding=1), torch.nn.ReLU(),
                              GroupConv2d(4, 4, 3, group, padding=1), GroupBatchNorm2d(4), torch.nn.ReLU(),
                              GroupGlobalPool(), torch.nn.Linear(4, 10)).double().eval()
    images = torch.randn(3, 1, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        logits = net(images)
        for g in group.elements():
            moved = GridField(None).apply(group, g, images, None)
            assert torch.allclose(net(moved), logits, atol=1e-12)


@pytest.mark.parametrize("layer", [GroupBatchNorm2d(4), GroupNorm2d(2, 4)], ids=lambda m: type(m).__name__)
def test_norms_name_the_channel_count(layer):
    """A (B, C |G|, ...) tensor reshaped wrongly: our message with expected and got, not torch's."""
    with pytest.raises(InvalidArgumentError, match="input has 16 channels .* the layer expects 4"):
        layer(torch.randn(2, 16, 4, 5, 5))
    with pytest.raises(InvalidArgumentError, match="batch, channels, \\|G\\|, H, W"):
        layer(torch.randn(2, 16, 5, 5))


def test_global_pool_bad_input_is_named():
    with pytest.raises(ValueError, match="spatial must be"):
        GroupGlobalPool("sum")
    with pytest.raises(ValueError, match="mode"):
        GroupGlobalPool("mean", "median")
    with pytest.raises(ValueError, match="\\(batch, channels, \\|G\\|, H, W\\)"):
        GroupGlobalPool()(torch.randn(2, 3, 5, 5))


def test_cached_filters_trace_under_torch_compile():
    """Inference serves the expanded filter from a cache keyed on version counters; compiled code expands it."""
    torch.manual_seed(3)
    conv = GroupConv2d(2, 3, 3, C(4), padding=1).eval()
    x = torch.randn(1, 2, 4, 8, 8)
    compiled = torch.compile(conv, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), conv(x))
