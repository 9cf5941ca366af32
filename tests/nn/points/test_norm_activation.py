import pytest
import torch

from equiscale import o3
from equiscale.nn.points import NormActivation
from equiscale.testing import assert_equivariant

e3nn_o3 = pytest.importorskip("e3nn.o3")
from e3nn import nn as e3nn_nn  # noqa: E402

IRREPS = ["3x0e+2x1o+1x2e", "2x1e+0o+1x3o"]
OPTIONS = [{}, {"bias": True}, {"epsilon": 0.5}]


@pytest.mark.parametrize("irreps", IRREPS)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_norm_activation_matches_e3nn(irreps, options, generator):
    ours = NormActivation(irreps, torch.sigmoid, **options)
    theirs = e3nn_nn.NormActivation(e3nn_o3.Irreps(irreps), torch.sigmoid, **options)
    if options.get("bias"):
        with torch.no_grad():
            theirs.biases.normal_(generator=generator)
            ours.biases.copy_(theirs.biases)
    x = torch.randn(10, ours.irreps_in.dim, generator=generator)
    x[0] = 0.0  # a zero input: clamped norm
    x[1, :3] = 1e-3
    assert str(ours.irreps_out) == str(theirs.irreps_out)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-7)


def test_norm_activation_without_normalising(generator):
    layer = NormActivation("2x1o", torch.tanh, normalize=False)
    x = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    x[0] = 0.0
    norms = x.reshape(4, 2, 3).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(layer(x), (x.reshape(4, 2, 3) * torch.tanh(norms)).reshape(4, 6))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(layer(x).sum(), x)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_norm_activation_is_equivariant_in_float64(options, o3_group, generator):
    layer = NormActivation(IRREPS[1], torch.nn.functional.silu, **options).double()
    if options.get("bias"):
        with torch.no_grad():
            layer.biases.normal_(generator=generator)
    x = torch.randn(6, layer.irreps_in.dim, generator=generator, dtype=torch.float64)
    assert_equivariant(layer, x, o3_group, str(layer.irreps_in), str(layer.irreps_out), generator=generator, tolerance=1e-10)


def test_norm_activation_derivatives(generator):
    layer = NormActivation(IRREPS[0], torch.sigmoid, bias=True).double()
    x = torch.randn(3, layer.irreps_in.dim, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    assert torch.autograd.gradgradcheck(layer, (x,))


def test_norm_activation_rejects_bad_arguments():
    with pytest.raises(ValueError, match="epsilon"):
        NormActivation("1x1o", torch.sigmoid, normalize=False, epsilon=0.1)
    with pytest.raises(ValueError, match="epsilon"):
        NormActivation("1x1o", torch.sigmoid, epsilon=-1.0)
    with pytest.raises(ValueError, match=r"features must have shape \(\.\.\., 3\)"):
        NormActivation(o3.Irreps("1x1o"), torch.sigmoid)(torch.randn(2, 4))
