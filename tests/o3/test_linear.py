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


# --- the dense path (shared weights, no f_in/f_out): one gathered matrix and one addmm ----------

def _paths(lin, mode):
    """Force the dense path ("dense") or the per-block path ("blocks") of this instance."""
    lin.dense_waste_per_block = 10**15 if mode == "dense" else -1
    return lin


RANDOM = [("2x0e + 1x1o + 2x1o + 1x2e + 3x0e", "3x1o + 2x0e + 1x2e + 1x0e", {"biases": True}),
          ("1x1o + 2x0e + 1x1o", "2x0e + 1x1o + 1x0o", {"path_normalization": "path"}),
          (IN, OUT, {"instructions": [(0, 0), (4, 0), (1, 1), (2, 2), (0, 0)]}),  # repeated path
          (IN, OUT, {"biases": [True, False, False, False, False]}),
          ("3x1o", "2x0e + 2x1o + 1x0e", {"biases": [False, False, True]}),  # bias only, offset
          ("2x2e + 1x0e", "1x0e + 2x2e + 1x0e", {"biases": [True, False, True]}),  # split biases
          ("32x0e", "96x0e + 32x1o + 32x2e", {}),  # live output columns only at the start
          ("32x0e + 32x1o + 32x2e", "32x0e", {"biases": True})]  # live input columns only


@pytest.mark.parametrize("irreps_in,irreps_out,kwargs", RANDOM)
def test_dense_path_equals_per_block_path(irreps_in, irreps_out, kwargs):
    torch.manual_seed(0)
    lin = Linear(irreps_in, irreps_out, **kwargs).double()
    assert lin._dense
    if lin.bias.numel():
        with torch.no_grad():
            lin.bias.normal_()
    x = torch.randn(2, 3, lin.irreps_in.dim, dtype=F64, requires_grad=True)
    outs = []
    for mode in ("blocks", "dense"):
        y = _paths(lin, mode)(x)
        g = torch.randn(y.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
        params = [p for p in (lin.weight, lin.bias) if p.numel()]
        outs.append([y] + list(torch.autograd.grad(y, [x] + params, g)))
    for a, b in zip(*outs):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-12


def test_dense_path_float32_and_explicit_shared_weights():
    torch.manual_seed(0)
    lin = Linear(IN, OUT, biases=True, internal_weights=False)
    x = torch.randn(5, Irreps(IN).dim)
    w, b = torch.randn(lin.weight_numel), torch.randn(lin.bias_numel)
    assert rel_err(_paths(lin, "dense")(x, w, b), _paths(lin, "blocks")(x, w, b)) <= 1e-6
    lin64 = Linear(IN, OUT, biases=True, internal_weights=False).double()
    assert (_paths(lin64, "dense")(x.double(), w.double(), b.double())
            - _paths(lin64, "blocks")(x.double(), w.double(), b.double())).abs().max() <= 1e-12


def test_dense_path_is_double_differentiable():
    lin = _paths(Linear("2x0e + 1x1o + 1x1o", "1x0e + 2x1o", biases=True,
                        internal_weights=False).double(), "dense")
    x = torch.randn(3, 8, dtype=F64, requires_grad=True)
    w = torch.randn(lin.weight_numel, dtype=F64, requires_grad=True)
    b = torch.randn(lin.bias_numel, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lin, (x, w, b))
    assert torch.autograd.gradgradcheck(lin, (x, w, b))
    # forces-style training: the gradient of d(out)/dx with respect to the parameters
    own = _paths(Linear("2x0e + 1x1o", "1x0e + 2x1o", biases=True).double(), "dense")
    ref = _paths(Linear("2x0e + 1x1o", "1x0e + 2x1o", biases=True).double(), "blocks")
    ref.load_state_dict(own.state_dict())
    grads = []
    for lin in (own, ref):
        (gx,) = torch.autograd.grad(lin(x[:, :5]).pow(2).sum(), x, create_graph=True)
        grads.append(torch.autograd.grad(gx.pow(3).sum(), lin.weight))
    assert (grads[0][0] - grads[1][0]).abs().max() <= 1e-12


def test_cost_rule_picks_dense_for_few_rows_and_blocks_for_many(monkeypatch):
    lin = Linear("32x0e + 32x1o + 32x2e", "32x0e + 32x1o + 32x2e").double()
    assert lin._use_dense(36) and not lin._use_dense(640)
    calls = []
    monkeypatch.setattr(lin, "_dense_forward", lambda *a: calls.append(1) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        lin(torch.randn(36, 288, dtype=F64))  # the dense path, in the small-molecule regime
    ref = Linear("32x0e + 32x1o + 32x2e", "32x0e + 32x1o + 32x2e").double()
    ref.load_state_dict(lin.state_dict())
    x = torch.randn(640, 288, dtype=F64)
    assert (lin(x) - _paths(ref, "dense")(x)).abs().max() <= 1e-12  # many rows: the blocks
    assert len(calls) == 1
    # one type in and out: the dense matrix wastes nothing, so it is always the dense path
    assert Linear("96x0e", "32x0e")._use_dense(10**6)


def test_dense_matrix_cached_only_without_gradient_to_the_parameters():
    lin = Linear("2x0e + 1x1o", "1x0e + 2x1o", biases=True).double()
    x = torch.randn(4, 5, dtype=F64, requires_grad=True)
    y = lin(x)
    assert lin._dense_cache is None  # the parameters want gradients: nothing kept
    with torch.no_grad():
        assert (lin(x) - y).abs().max() == 0 and lin._dense_cache is not None
        kept = lin._dense_cache[1]
        assert lin(x) is not None and lin._dense_cache[1] is kept
        lin.weight.mul_(2)  # an in-place update (optimizer step, load_state_dict) invalidates it
        assert (lin(x) - (2 * y - _bias_part(lin, y))).abs().max() <= 1e-12
    (g,) = torch.autograd.grad(lin(x).sum(), lin.weight)  # and gradients still flow
    assert g.abs().sum() > 0
    for p in lin.parameters():  # frozen parameters (the ASE calculator): cached with grad on
        p.requires_grad_(False)
    (gx,) = torch.autograd.grad(lin(x).pow(2).sum(), x)
    assert lin._dense_cache is not None and gx.shape == x.shape


def _bias_part(lin, y):
    """The bias's contribution to ``y`` (scalar output columns)."""
    out = torch.zeros_like(y)
    out[:, :1] = lin.bias
    return out


def test_empty_irreps():
    lin = Linear("", "2x0e", biases=True)
    with torch.no_grad():
        lin.bias.normal_()
    out = lin(torch.randn(3, 0))
    assert out.shape == (3, 2) and (out - lin.bias).abs().max() == 0
    assert Linear("2x0e", "")(torch.randn(3, 2)).shape == (3, 0)
    assert Linear("2x0e", "1x1o")(torch.randn(4, 2)).abs().max() == 0
    assert Linear("2x1o", "2x1o")(torch.randn(0, 6)).shape == (0, 6)


def test_dense_path_adds_no_buffers_and_follows_dtype():
    ref, ours = pair(torch.float32, IN, OUT, biases=True)
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    x = torch.randn(4, Irreps(IN).dim)
    y32 = _paths(ours, "dense")(x)
    ours.double()  # the path weights are kept in float64: float64-accurate after .double()
    y64 = ours(x.double())
    assert y64.dtype == F64 and rel_err(y64, y32.double()) <= 1e-5
    assert (y64 - _paths(ours, "blocks")(x.double())).abs().max() <= 1e-12
