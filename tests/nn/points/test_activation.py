import pytest
import torch

from equiscale.nn.points import Activation, RadialMLP, normalize2mom

e3nn = pytest.importorskip("e3nn")
from e3nn import math as e3nn_math  # noqa: E402
from e3nn import nn as e3nn_nn  # noqa: E402


@pytest.mark.parametrize("f", [torch.tanh, torch.sigmoid, torch.nn.functional.silu, torch.abs, torch.relu])
def test_normalize2mom_constant_matches_e3nn(f):
    ours, theirs = normalize2mom(f), e3nn_math.normalize2mom(f)
    assert ours.cst == theirs.cst
    x = torch.randn(100, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-15, atol=0)


def test_normalize2mom_rejects_a_zero_function():
    with pytest.raises(ValueError, match="second moment"):
        normalize2mom(torch.zeros_like)


def test_activation_matches_e3nn_and_tracks_parity():
    irreps, acts = "4x0e+3x0o+2x1o+2x0o", [torch.tanh, torch.abs, None, torch.tanh]
    ours, theirs = Activation(irreps, acts), e3nn_nn.Activation(irreps, acts)
    assert str(ours.irreps_out) == str(theirs.irreps_out) == "4x0e+3x0e+2x1o+2x0o"
    x = torch.randn(7, ours.irreps_in.dim)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="neither"):
        Activation("2x0o", [torch.sigmoid])
    with pytest.raises(ValueError, match="non-scalar"):
        Activation("2x1o", [torch.tanh])
    with pytest.raises(ValueError, match="entries"):
        Activation("2x0e", [torch.tanh, torch.tanh])


def test_radial_mlp_matches_e3nn_fully_connected_net():
    ours = RadialMLP([8, 16, 16, 5], torch.nn.functional.silu)
    theirs = e3nn_nn.FullyConnectedNet([8, 16, 16, 5], torch.nn.functional.silu)
    with torch.no_grad():
        for i, weight in enumerate(ours.weights):
            getattr(theirs, f"layer{i}").weight.copy_(weight)
    x = torch.randn(10, 8)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="x must have shape"):
        ours(torch.randn(3, 7))
