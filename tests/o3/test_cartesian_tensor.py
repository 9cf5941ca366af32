"""o3.CartesianTensor and o3.SphericalTensor (e3nn.io's) against e3nn 0.6 and against their math."""
import copy
import pickle

import pytest
import torch

from tests.helpers import default_dtype

from equiscale.errors import InvalidArgumentError
from equiscale.o3 import CartesianTensor, Irreps, ReducedTensorProducts, SphericalTensor, rand_matrix

pytest.importorskip("e3nn")
from e3nn import io as e3io  # noqa: E402

F64 = torch.float64
FORMULAS = ["ij=ji", "ij=-ji", "ij", "ijk=-jik=-ikj", "ijk=jik", "ijkl=jikl=klij"]


def symmetrize(t, formula):
    """Average of ``sign * t`` over the formula's signed index permutations (by brute force)."""
    f0 = formula.split("=")[0]
    group = {(-1 if s.startswith("-") else 1, tuple(f0.index(c) for c in s.lstrip("-"))) for s in formula.split("=")}
    while True:
        new = group | {(a * b, tuple(p[k] for k in q)) for a, p in group for b, q in group}
        if new == group:
            break
        group = new
    lead = t.dim() - len(f0)
    return sum(s * t.permute(*range(lead), *[lead + k for k in p]) for s, p in group) / len(group)


def rotate(t, R, n):
    """``R`` applied to every index of a Cartesian tensor ``(..., 3, ..., 3)``."""
    for k in range(n):
        t = torch.movedim(torch.tensordot(t, R, dims=([t.dim() - n + k], [1])), -1, t.dim() - n + k)
    return t


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (F64, 1e-13)])
def test_matches_e3nn(formula, dtype, tol):
    with default_dtype(dtype):
        ref = e3io.CartesianTensor(formula)
    ours = CartesianTensor(formula)
    assert ours == ref and Irreps(ours) == Irreps(ref) and ours.indices == ref.indices and ours.formula == formula
    n = len(ours.indices)
    t = torch.randn(4, 2, *([3] * n), dtype=dtype)
    xs = [torch.randn(4, 3, dtype=dtype) for _ in range(n)]
    with default_dtype(dtype):
        a, va = ref.from_cartesian(t), ref.from_vectors(*xs)
        za = ref.to_cartesian(a)
    b, vb = ours.from_cartesian(t), ours.from_vectors(*xs)
    zb = ours.to_cartesian(b)
    for x, y in ((a, b), (va, vb), (za, zb)):
        assert y.shape == x.shape and y.dtype == dtype
        assert (x - y).abs().max().item() <= tol * (1 + x.abs().max().item())


@pytest.mark.parametrize("formula", FORMULAS)
def test_round_trip_is_the_symmetric_part_and_equivariant(formula):
    ct = CartesianTensor(formula)
    n = len(ct.indices)
    t = torch.randn(5, *([3] * n), dtype=F64)
    y = ct.from_cartesian(t)
    assert torch.allclose(ct.to_cartesian(y), symmetrize(t, formula), atol=1e-13)
    assert torch.allclose(ct.from_cartesian(ct.to_cartesian(y)), y, atol=1e-13)
    for parity in (1, -1):
        R = parity * rand_matrix(dtype=F64)
        D = ct.D_from_matrix(R)
        assert (ct.from_cartesian(rotate(t, R, n)) - y @ D.T).abs().max().item() <= 1e-10
    xs = [torch.randn(3, dtype=F64) for _ in range(n)]
    outer = xs[0]
    for x in xs[1:]:
        outer = outer[..., None] * x
    assert torch.allclose(ct.from_vectors(*xs), ct.from_cartesian(outer), atol=1e-13)


def test_polarizability_example():
    ct = CartesianTensor("ij=ji")
    assert ct == Irreps("0e + 2e") and ct.dim == 6
    alpha = torch.randn(3, 3, dtype=F64)
    alpha = alpha + alpha.T
    y = ct.from_cartesian(alpha)
    assert torch.allclose(y[0], alpha.trace() / 3 ** 0.5)  # the 0e part is the isotropic trace
    assert torch.allclose(ct.to_cartesian(y), alpha, atol=1e-14)


def test_rtp_argument_and_reduced_tensor_products():
    ct = CartesianTensor("ij=ji")
    rtp = ct.reduced_tensor_products(torch.zeros(1, dtype=F64))
    assert isinstance(rtp, ReducedTensorProducts) and rtp.change_of_basis.dtype == F64
    with default_dtype(F64):
        exact = ReducedTensorProducts("ij=ji", i="1o").change_of_basis
    assert torch.equal(rtp.change_of_basis, exact)  # not rounded through float32
    t = torch.randn(3, 3, dtype=F64)
    assert torch.allclose(ct.from_cartesian(t, rtp=rtp), ct.from_cartesian(t), atol=1e-15)
    assert torch.allclose(ct.from_vectors(t[0], t[1], rtp=rtp), ct.from_vectors(t[0], t[1]), atol=1e-15)


def test_pickle_copy_and_errors():
    ct = CartesianTensor("ijk=jik")
    for other in (pickle.loads(pickle.dumps(ct)), copy.deepcopy(ct)):
        assert other == ct and other.formula == ct.formula and isinstance(other, CartesianTensor)
    with pytest.raises(InvalidArgumentError, match=r"expected a Cartesian tensor of shape \(\.\.\., 3, 3, 3\)"):
        ct.from_cartesian(torch.randn(3, 3))
    with pytest.raises(InvalidArgumentError, match=r"expected shape \(\.\.\., 18\)"):
        ct.to_cartesian(torch.randn(2, 17))
    with pytest.raises(InvalidArgumentError, match="not a permutation"):
        CartesianTensor("ij=jk")


# ------------------------------------------------------------------ SphericalTensor
@pytest.mark.parametrize("args", [(3, 1, 1), (3, 1, -1), (2, -1, 1), (4, -1, -1), (0, 1, -1)])
def test_spherical_tensor_irreps(args):
    assert SphericalTensor(*args) == e3io.SphericalTensor(*args)
    assert pickle.loads(pickle.dumps(SphericalTensor(*args))) == SphericalTensor(*args)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (F64, 1e-12)])
def test_spherical_tensor_methods_match_e3nn(dtype, tol):
    with default_dtype(dtype):
        ref = e3io.SphericalTensor(4, 1, -1)
    ours = SphericalTensor(4, 1, -1)
    pos = torch.tensor([[1.0, 0, 0], [3.0, 4.0, 0], [0, -1.0, 2.0]], dtype=dtype)
    p, v = torch.randn(2, 5, 3, dtype=dtype), torch.randn(2, 5, dtype=dtype)
    sig, r = torch.randn(3, ours.dim, dtype=dtype), torch.randn(2, 4, 3, dtype=dtype)
    with default_dtype(dtype):
        expected = [ref.with_peaks_at(pos), ref.with_peaks_at(pos, torch.tensor([-1.5, 2.0, 1.0], dtype=dtype)),
                    ref.sum_of_diracs(p, v), ref.from_samples_on_s2(p, v, res=30), ref.norms(sig),
                    ref.signal_xyz(sig, r), *ref.signal_on_grid(sig[0], res=20), *ref.plot(sig[1], res=20)]
    got = [ours.with_peaks_at(pos), ours.with_peaks_at(pos, torch.tensor([-1.5, 2.0, 1.0], dtype=dtype)),
           ours.sum_of_diracs(p, v), ours.from_samples_on_s2(p, v, res=30), ours.norms(sig),
           ours.signal_xyz(sig, r), *ours.signal_on_grid(sig[0], res=20), *ours.plot(sig[1], res=20)]
    for k, (a, b) in enumerate(zip(expected, got)):
        assert b.shape == a.shape and b.dtype == dtype, k
        assert (a - b).abs().max().item() <= tol * (1 + a.abs().max().item()), k
    assert torch.allclose(ours.signal_xyz(got[0], pos), pos.norm(dim=1), atol=100 * tol)


def test_find_peaks_matches_e3nn():
    ours, ref = SphericalTensor(4, 1, -1), e3io.SphericalTensor(4, 1, -1)
    x = ours.with_peaks_at(torch.tensor([[4.0, 0, 4.0], [0, 5.0, 0]], dtype=F64))
    with default_dtype(F64):
        pa, va = ref.find_peaks(x, res=60)
    pb, vb = ours.find_peaks(x, res=60)
    ia, ib = va.argsort(), vb.argsort()
    assert torch.allclose(va[ia], vb[ib], atol=1e-12) and torch.allclose(pa[ia], pb[ib], atol=1e-12)
    assert len(ours.plotly_surface(torch.randn(2, ours.dim, dtype=F64), res=10)) == 2


def test_spherical_tensor_equivariance_and_empty_inputs():
    st = SphericalTensor(5, 1, -1)
    p, v = torch.randn(7, 3, dtype=F64), torch.randn(7, dtype=F64)
    for parity in (1, -1):
        R = parity * rand_matrix(dtype=F64)
        assert (st.sum_of_diracs(p @ R.T, v) - st.D_from_matrix(R) @ st.sum_of_diracs(p, v)).abs().max() <= 1e-10
    assert st.sum_of_diracs(torch.empty(1, 0, 2, 3), torch.empty(2, 0, 1)).shape == (2, 0, st.dim)
    assert st.from_samples_on_s2(torch.empty(2, 0, 10, 3), torch.empty(2, 0, 10)).shape == (2, 0, st.dim)
    assert SphericalTensor(2, -1, 1).signal_xyz(torch.randn(9), torch.randn(4, 3)).shape == (4,)  # e3nn refuses p_val=-1


def test_spherical_tensor_errors():
    with pytest.raises(InvalidArgumentError, match="p_val: expected"):
        SphericalTensor(2, 0, 1)
    with pytest.raises(InvalidArgumentError, match="lmax"):
        SphericalTensor(-1, 1, 1)
    with pytest.raises(InvalidArgumentError, match="p_val must be"):
        SphericalTensor(2, -1, 1).with_peaks_at(torch.randn(2, 3))
    with pytest.raises(InvalidArgumentError, match="lmax=1 cannot take these 6 values"):
        SphericalTensor(1, 1, -1).with_peaks_at(torch.randn(6, 3, dtype=F64))


def test_conversions_compile_without_graph_breaks():
    ct = CartesianTensor("ij=ji")
    t, v = torch.randn(5, 3, 3), torch.randn(5, 3)

    def f(t, v):
        return ct.to_cartesian(ct.from_cartesian(t)) + ct.to_cartesian(ct.from_vectors(v, v))

    torch._dynamo.reset()
    assert torch.allclose(torch.compile(f, fullgraph=True, backend="eager")(t, v), f(t, v))
