import math

import pytest
import torch

from equiscale.nn.points import BesselBasis, CosineCutoff, GaussianBasis, PolynomialCutoff


def test_bessel_basis_is_the_dimenet_formula():
    basis = BesselBasis(num_basis=6, cutoff=4.0).double()
    r = torch.linspace(0.1, 5.0, 40, dtype=torch.float64)
    n = torch.arange(1, 7, dtype=torch.float64)
    torch.testing.assert_close(basis.frequencies.detach(), n * math.pi)  # initialised at n pi (float32-rounded)
    w = basis.frequencies.detach()
    expected = 2.0 / 4.0 * torch.sin(w * r[:, None] / 4.0) / r[:, None]
    torch.testing.assert_close(basis(r), expected, rtol=1e-12, atol=1e-12)


def test_bessel_basis_at_zero_is_the_limit_and_frequencies_train():
    basis = BesselBasis(num_basis=3, cutoff=2.0).double()
    value = basis(torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(value[0], 2.0 / 2.0 * basis.frequencies.detach() / 2.0, rtol=1e-12, atol=0)
    assert isinstance(basis.frequencies, torch.nn.Parameter)
    assert not isinstance(BesselBasis(3, 2.0, trainable=False).frequencies, torch.nn.Parameter)
    assert BesselBasis(8, 5.0)(torch.rand(2, 5)).shape == (2, 5, 8)


def test_gaussian_basis_values():
    basis = GaussianBasis(num_basis=5, cutoff=4.0, start=0.0).double()
    r = torch.tensor([0.0, 1.0, 2.5], dtype=torch.float64)
    centres = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(basis(r), torch.exp(-0.5 * (r[:, None] - centres) ** 2), rtol=1e-12, atol=1e-12)
    assert basis(torch.rand(3, 2)).shape == (3, 2, 5)


@pytest.mark.parametrize("p", [2.0, 6.0])
def test_polynomial_cutoff_is_smooth_at_the_cutoff(p):
    cutoff = PolynomialCutoff(cutoff=3.0, p=p)
    r = torch.tensor([0.0, 3.0 - 1e-7, 3.0, 3.5], dtype=torch.float64, requires_grad=True)
    f = cutoff(r)
    (df,) = torch.autograd.grad(f.sum(), r, create_graph=True)
    (d2f,) = torch.autograd.grad(df.sum(), r)
    torch.testing.assert_close(f.detach(), torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-10)
    assert df.abs().max() < 1e-6 and d2f[1:].abs().max() < 1e-3
    x = torch.tensor([0.3, 0.7], dtype=torch.float64)
    expected = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    torch.testing.assert_close(cutoff(3.0 * x), expected)


def test_cosine_cutoff_values():
    cutoff = CosineCutoff(cutoff=2.0)
    r = torch.tensor([0.0, 1.0, 2.0, 2.5], dtype=torch.float64)
    torch.testing.assert_close(cutoff(r), torch.tensor([1.0, 0.5, 0.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "module", [BesselBasis(4, 3.0), GaussianBasis(4, 3.0, trainable=True), PolynomialCutoff(3.0), CosineCutoff(3.0)]
)
def test_first_and_second_derivatives(module):
    module = module.double()
    r = torch.linspace(0.2, 3.4, 8, dtype=torch.float64, requires_grad=True)  # avoids r = cutoff
    assert torch.autograd.gradcheck(module, (r,))
    assert torch.autograd.gradgradcheck(module, (r,))


def test_float32_by_default_and_bad_arguments():
    assert BesselBasis()(torch.rand(3)).dtype == torch.float32
    with pytest.raises(ValueError, match="cutoff"):
        BesselBasis(4, cutoff=0.0)
    with pytest.raises(ValueError, match="num_basis"):
        GaussianBasis(0)
    with pytest.raises(ValueError, match="p"):
        PolynomialCutoff(1.0, p=-1)
    with pytest.raises(ValueError, match="r must be"):
        CosineCutoff(1.0)(torch.arange(3))
