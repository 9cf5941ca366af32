"""o3.Norm against e3nn 0.6's (test-only dependency) and against the norms computed by hand."""
import pytest
import torch

from tests.helpers import default_dtype

from equiscale.o3 import Irreps, Norm, rand_matrix

pytest.importorskip("e3nn")
from e3nn import o3 as e3  # noqa: E402

F64 = torch.float64
CASES = ["2x1o + 0e + 3x2e + 1x1o", "17x1o", "0e + 0e + 1e", "", "0x1o + 2x0e", "3x3o + 2x0o"]


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("irreps", CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (F64, 1e-14)])
def test_matches_e3nn(irreps, squared, dtype, tol):
    with default_dtype(dtype):
        ref = e3.Norm(irreps, squared=squared)
    ours = Norm(irreps, squared=squared)
    assert repr(ours) == repr(ref) and ours.irreps_in == ref.irreps_in and ours.irreps_out == ref.irreps_out
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 2, Irreps(irreps).dim, dtype=dtype, requires_grad=True)
    with default_dtype(dtype):
        a = ref(x)
    b = ours(x)
    assert b.shape == a.shape and b.dtype == dtype
    assert (a - b).abs().max().item() <= tol * (1 + a.abs().max().item()) if a.numel() else True
    if a.numel():
        g = torch.randn_like(a)
        (ga,), (gb,) = torch.autograd.grad(a, x, g), torch.autograd.grad(b, x, g)
        assert (ga - gb).abs().max().item() <= 10 * tol * (1 + ga.abs().max().item())


def test_values_are_the_norms_of_each_copy():
    irreps = Irreps("2x1o + 0e + 3x2e")
    x = irreps.randn(5, -1, dtype=F64)
    expected = []
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        expected.append(x[:, sl].reshape(5, mul, ir.dim).norm(dim=-1))
    expected = torch.cat(expected, dim=1)
    assert torch.allclose(Norm(irreps)(x), expected, atol=1e-14)
    assert torch.allclose(Norm(irreps, squared=True)(x), expected.square(), atol=1e-13)


def test_zero_input_has_zero_gradient():
    x = torch.zeros(2, 7, requires_grad=True)
    Norm("2x1o + 0e")(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (torch.float32, 1e-5)])
def test_invariant_under_o3(dtype, tol):
    irreps = Irreps("2x1o + 0e + 3x2e + 1x3o")
    norm = Norm(irreps)
    x = irreps.randn(6, -1, dtype=dtype)
    for parity in (1, -1):
        R = parity * rand_matrix(dtype=F64)
        D = irreps.D_from_matrix(R).to(dtype)
        assert (norm(x @ D.T) - norm(x)).abs().max().item() <= tol


def test_wrong_width_is_refused():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        Norm("1o + 0e")(torch.randn(3, 5))
