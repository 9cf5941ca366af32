"""Linear against e3nn 0.6's o3.Linear (test-only dependency)."""

import pytest
import torch

from tests.helpers import default_dtype

from equiscale.o3._irreps import Irreps
from equiscale.o3._linear import Linear

pytest.importorskip("e3nn")
from e3nn import o3 as e3  # noqa: E402

F64 = torch.float64
IN = "3x0e + 2x1o + 2x2e + 1x3o + 1x0e"
OUT = "4x0e + 1x1o + 3x2e + 1x0o + 2x3o"


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def pair(dtype, *args, **kwargs):
    with default_dtype(dtype):
        torch.manual_seed(0)
        ref = e3.Linear(*args, **kwargs)
        ours = Linear(*args, **kwargs)
        if ref.bias.numel():
            with torch.no_grad():
                ref.bias.normal_()
        ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (F64, 1e-10)])
@pytest.mark.parametrize("kwargs", [{}, {"biases": True}, {"path_normalization": "path"},
                                    {"instructions": [(0, 0), (4, 0), (1, 1), (2, 2)]},
                                    {"biases": [True, False, False, False, False]}])
def test_matches_e3nn(kwargs, dtype, tol):
    ref, ours = pair(dtype, IN, OUT, **kwargs)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    assert ours.weight_numel == ref.weight_numel and repr(ours) == repr(ref)
    assert [i[:3] for i in ours.instructions] == [i[:3] for i in ref.instructions]
    assert [i.path_weight for i in ours.instructions] == pytest.approx(
        [i.path_weight for i in ref.instructions], rel=1e-12)
    x = torch.randn(2, 5, Irreps(IN).dim, dtype=dtype, requires_grad=True)
    with default_dtype(dtype):
        a = ref(x)
    b = ours(x)
    assert b.shape == a.shape and rel_err(b, a) <= tol
    g = torch.randn_like(a)
    ga = torch.autograd.grad(a, (x, ref.weight), g)
    gb = torch.autograd.grad(b, (x, ours.weight), g)
    for p, q in zip(gb, ga):
        assert rel_err(p, q) <= tol


def test_f_in_f_out_and_per_sample_weights():
    ref, ours = pair(torch.float32, IN, OUT, f_in=4, f_out=3, biases=True)
    x = torch.randn(6, 4, Irreps(IN).dim)
    assert rel_err(ours(x), ref(x)) <= 1e-5
    ref, ours = pair(torch.float32, IN, OUT, shared_weights=False)
    assert not ours.internal_weights and ours.weight.numel() == 0
    x = torch.randn(6, Irreps(IN).dim)
    w = torch.randn(6, ref.weight_numel)
    assert rel_err(ours(x, w), ref(x, w)) <= 1e-5
    assert [v.shape for v in ours.weight_views(w)] == [v.shape for v in ref.weight_views(w)]


def test_equivariant_and_double_differentiable():
    lin = Linear(IN, OUT, biases=True).double()
    R, _ = torch.linalg.qr(torch.randn(3, 3, 3, dtype=F64))
    x = torch.randn(3, Irreps(IN).dim, dtype=F64, requires_grad=True)
    din, dout = Irreps(IN).D_from_matrix(R), Irreps(OUT).D_from_matrix(R)
    a = lin(torch.einsum("nij,nj->ni", din, x))
    b = torch.einsum("nij,nj->ni", dout, lin(x))
    assert (a - b).abs().max() <= 1e-10
    small = Linear("2x0e + 1x1o", "1x0e + 2x1o", biases=True).double()
    xs = torch.randn(2, 5, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(small, (xs,))
    assert torch.autograd.gradgradcheck(small, (xs,))


def test_bad_input_raises_value_error():
    lin = Linear("2x0e + 1x1o", "1x0e + 2x1o")
    with pytest.raises(ValueError, match=r"features: expected shape \(\.\.\., 5\)"):
        lin(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"weight: expected shape \(4,\)"):
        lin(torch.randn(3, 5), torch.randn(5))
    with pytest.raises(ValueError, match="same irrep"):
        Linear("1x0e", "1x1o", instructions=[(0, 0)])
    with pytest.raises(ValueError, match="only scalar"):
        Linear("1x1o", "1x1o", biases=[True])
    with pytest.raises(ValueError, match="path_normalization"):
        Linear("1x0e", "1x0e", path_normalization="bad")
