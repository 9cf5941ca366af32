"""Filter expansion: matches an independent reference, caches for inference, steerable basis for n > 4."""
from __future__ import annotations

import math

import pytest
import torch

from equiscale.groups import C, D
from equiscale.nn.grids import GroupConv2d, LiftingConv2d
from equiscale.testing import GridField

from .conftest import SCALAR, error_at_all_elements, regular


def _rotate_kernel(group, g, kernel):
    """``L_g K`` through the public tester's grid action (an implementation independent of ours)."""
    return GridField(None).apply(group, torch.tensor(g), kernel.double(), None)


@pytest.mark.parametrize("group", [C(4), D(4), D(2)], ids=str)
def test_exact_expansion_matches_reference(group):
    torch.manual_seed(0)
    lift = LiftingConv2d(2, 3, 3, group, dtype=torch.float64)
    conv = GroupConv2d(2, 3, 3, group, dtype=torch.float64)
    table = group.compose(group.inverse(group.elements())[:, None], group.elements()[None, :])
    lifted, _ = lift.expand()
    expanded, _ = conv.expand()
    n = group.order
    for g in range(n):
        assert torch.equal(lifted.view(3, n, 2, 3, 3)[:, g], _rotate_kernel(group, g, lift.weight))
        for h in range(n):
            reference = _rotate_kernel(group, g, conv.weight[:, :, int(table[g, h])])
            assert torch.equal(expanded.view(3, n, 2, n, 3, 3)[:, g, :, h], reference)


def test_filter_is_cached_for_inference_and_invalidated_by_updates():
    torch.manual_seed(1)
    layer = GroupConv2d(2, 2, 3, C(4), padding=1)
    x = torch.randn(1, 2, 4, 6, 6)
    with torch.no_grad():
        first = layer.filter()[0]
        assert layer.filter()[0] is first
        y0 = layer(x)
    loss = layer(x).square().sum()  # grad enabled: expands afresh, gradients reach the weight
    loss.backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    with torch.no_grad():  # an optimizer's in-place step
        layer.weight -= 0.1 * layer.weight.grad
    with torch.no_grad():
        second = layer.filter()[0]
        assert second is not first
        assert not torch.allclose(layer(x), y0)
        layer.weight.mul_(2)  # any in-place change invalidates the cache
        assert torch.equal(layer.filter()[0], layer.expand()[0])
        assert not torch.allclose(layer.filter()[0], second)
    with torch.inference_mode():
        assert torch.allclose(layer(x), layer(x))
    assert not any("cache" in key or "index" in key for key in layer.state_dict())


def test_load_state_dict_invalidates_cache():
    torch.manual_seed(2)
    a, b = LiftingConv2d(1, 2, 3, D(4), padding=1), LiftingConv2d(1, 2, 3, D(4), padding=1)
    x = torch.randn(1, 1, 6, 6)
    with torch.no_grad():
        b(x)
        b.load_state_dict(a.state_dict())
        assert torch.equal(a(x), b(x))


def test_gradcheck_through_the_expansion():
    torch.manual_seed(3)
    for layer in (GroupConv2d(1, 2, 3, D(4), padding=1, dtype=torch.float64),
                  GroupConv2d(1, 1, 3, C(8), padding=1, dtype=torch.float64)):
        weight = layer.weight.detach().clone().requires_grad_()
        x = torch.randn(1, 1, layer.group.order, 5, 5, dtype=torch.float64)
        call = lambda w, layer=layer, x=x: torch.func.functional_call(layer, {"weight": w, "bias": layer.bias}, (x,))
        assert torch.autograd.gradcheck(call, (weight,), fast_mode=True)


@pytest.mark.parametrize("group", [C(8), D(8), C(16)], ids=str)
def test_steerable_basis_exact_at_quarter_turns(group):
    torch.manual_seed(4)
    net = torch.nn.Sequential(LiftingConv2d(1, 3, 5, group, padding=2, dtype=torch.float64), torch.nn.ReLU(),
                              GroupConv2d(3, 2, 3, group, padding=1, dtype=torch.float64))
    n = group.n
    quarter_turns = [g for g in range(group.order) if (g % n) % (n // 4) == 0]
    x = torch.randn(1, 1, 12, 12, dtype=torch.float64)
    assert error_at_all_elements(net, x, group, SCALAR, regular(group), quarter_turns) < 1e-12


def _blobs(centres, amplitudes, size, width):
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(c, c, indexing="ij")
    field = torch.zeros(size, size, dtype=torch.float64)
    for (cx, cy), a in zip(centres, amplitudes):
        field += a * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
    return field[None, None]


def error_at_45_degrees(layer, trials=4, width=2.0, size=33, seed=0):
    """Relative error of ``layer`` at the rotation centre for smooth fields rotated by 45 degrees."""
    generator = torch.Generator().manual_seed(seed)
    rotation = torch.tensor([[math.cos(math.pi / 4), -math.sin(math.pi / 4)],
                             [math.sin(math.pi / 4), math.cos(math.pi / 4)]], dtype=torch.float64)
    step = layer.group.n // 8
    worst = 0.0
    with torch.no_grad():
        for _ in range(trials):
            centres = torch.randn(6, 2, dtype=torch.float64, generator=generator) * 4
            amplitudes = torch.randn(6, dtype=torch.float64, generator=generator)
            y = layer(_blobs(centres, amplitudes, size, width))
            rotated = layer(_blobs(centres @ rotation.T, amplitudes, size, width))
            c = size // 2
            expected = torch.roll(y[..., c, c], step, dims=2)  # out'[h] = out[a^-1 h], a = r^step
            worst = max(worst, float((rotated[..., c, c] - expected).abs().max() / y.abs().max()))
    return worst


def test_45_degree_error_is_small_but_not_zero():
    torch.manual_seed(5)
    layer = LiftingConv2d(1, 8, 5, C(8), padding=2, dtype=torch.float64)
    error = error_at_45_degrees(layer)
    assert 1e-6 < error < 0.05
