"""o3.ReducedTensorProducts against e3nn 0.6 (test-only reference) and against its defining math.

The defining properties are checked independently of e3nn: the change of basis ``Q`` has
orthonormal rows, has the formula's symmetries, intertwines the input and output Wigner-D
matrices (float64, random rotations with and without inversion) and spans the whole space of
tensors with those symmetries (its rank computed from a brute-force symmetriser).
"""
import itertools
import math

import pytest
import torch

from tests.helpers import default_dtype

from equiscale.errors import InvalidArgumentError
from equiscale.o3 import Irreps, ReducedTensorProducts, rand_matrix

pytest.importorskip("e3nn")
from e3nn import o3 as e3  # noqa: E402

F64 = torch.float64
CASES = [
    ("ij=ji", dict(i="1o")),
    ("ij=-ji", dict(i="1o")),
    ("ijk=jik=ikj", dict(i="1o")),
    ("ijk=-jik=-ikj", dict(i="1o")),
    ("ijk=jki", dict(i="1o")),
    ("ijkl=jikl=klij", dict(i="1o")),
    ("ijkl=jikl=ikjl=ijlk", dict(i="1e")),
    ("ij", dict(i="1o", j="0e + 1e")),
    ("i", dict(i="2x1o + 0e")),
    ("ij=ji", dict(i="0e + 1o + 2e")),
    ("ij=ji", dict(i="2x1o")),
    ("ijk=-jik", dict(i="1o", k="2e + 0o")),
    ("ijk=jik", dict(i="1o", k="1o", filter_ir_out=["1o", "2o"])),
    ("ijk=jik", dict(i="1o", k="1o", filter_ir_mid=["0e", "2e", "1o", "2o", "3o"])),
]
IDS = [f + "," + ",".join(f"{k}={v}" for k, v in kw.items()) for f, kw in CASES]


def e3nn_reference(formula, kwargs, dtype=F64):
    with default_dtype(dtype):  # e3nn builds its basis in the default dtype
        return e3.ReducedTensorProducts(formula, **kwargs)


def signed_group(formula):
    """The signed permutations of a formula, closed by brute force over all permutations."""
    f0 = formula.split("=")[0]
    gens = [(-1 if t.startswith("-") else 1, t.lstrip("-")) for t in formula.split("=")]
    group = {(s, tuple(f0.index(c) for c in t)) for s, t in gens}
    while True:
        new = {(s * t, tuple(p[k] for k in q)) for s, p in group for t, q in group} | group
        if new == group:
            return group
        group = new


@pytest.mark.parametrize("formula,kwargs", CASES, ids=IDS)
def test_change_of_basis_and_state_dict_equal_e3nn(formula, kwargs):
    ref = e3nn_reference(formula, kwargs)
    with default_dtype(F64):
        ours = ReducedTensorProducts(formula, **kwargs)
    assert ours.irreps_out == ref.irreps_out and repr(ours) == repr(ref)
    assert [Irreps(i) for i in ours.irreps_in] == [Irreps(i) for i in ref.irreps_in]
    assert ours.change_of_basis.shape == ref.change_of_basis.shape
    assert (ours.change_of_basis - ref.change_of_basis).abs().max().item() < 1e-12
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    ours.load_state_dict(ref.state_dict())  # strict: same keys and shapes


@pytest.mark.parametrize("formula,kwargs", CASES[:8], ids=IDS[:8])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (F64, 1e-13)])
def test_forward_matches_e3nn(formula, kwargs, dtype, tol):
    ref = e3nn_reference(formula, kwargs, dtype)
    ours = ReducedTensorProducts(formula, **kwargs)
    assert ours.change_of_basis.dtype == torch.get_default_dtype()
    xs = [irreps.randn(3, 2, -1, dtype=dtype, requires_grad=True) for irreps in ours.irreps_in]
    with default_dtype(dtype):
        a = ref(*xs)
    b = ours(*xs)
    assert b.shape == a.shape and b.dtype == dtype
    assert (a - b).abs().max().item() <= tol * (1 + a.abs().max().item())
    g = torch.randn_like(a)
    for ga, gb in zip(torch.autograd.grad(a, xs, g), torch.autograd.grad(b, xs, g)):
        assert (ga - gb).abs().max().item() <= 10 * tol * (1 + ga.abs().max().item())


@pytest.mark.parametrize("formula,kwargs", CASES, ids=IDS)
def test_defining_properties(formula, kwargs):
    rtp = ReducedTensorProducts(formula, **kwargs)
    q = rtp._change_of_basis64
    dims = [irreps.dim for irreps in rtp.irreps_in]
    flat = q.reshape(q.shape[0], -1)
    assert torch.allclose(flat @ flat.T, torch.eye(len(flat), dtype=F64), atol=1e-12)
    for sign, p in signed_group(formula):
        assert torch.allclose(q, sign * q.permute(0, *[1 + k for k in p]), atol=1e-12)
    for parity in (1, -1):
        R = parity * rand_matrix(dtype=F64)
        d_out = rtp.irreps_out.D_from_matrix(R)
        rotated = q
        for k, irreps in enumerate(rtp.irreps_in):
            rotated = torch.movedim(torch.tensordot(rotated, irreps.D_from_matrix(R), dims=([1 + k], [0])), -1, 1 + k)
        # Q . (D_1 (x) ... (x) D_n) = D_out . Q
        assert (rotated - torch.tensordot(d_out, q, dims=1)).abs().max().item() <= 1e-10
        xs = [irreps.randn(4, -1, dtype=F64) for irreps in rtp.irreps_in]
        rx = [x @ irreps.D_from_matrix(R).T for x, irreps in zip(xs, rtp.irreps_in)]
        assert (rtp(*rx) - rtp(*xs) @ d_out.T).abs().max().item() <= 1e-10
    if "filter_ir_out" in kwargs or "filter_ir_mid" in kwargs:
        return
    # complete: as many outputs as independent tensors with the symmetries (brute force)
    n = math.prod(dims)
    sym = torch.zeros(n, n, dtype=F64)
    eye = torch.eye(n, dtype=F64).reshape(n, *dims)
    group = signed_group(formula)
    for sign, p in group:
        sym += sign * eye.permute(0, *[1 + k for k in p]).reshape(n, n)
    assert rtp.irreps_out.dim == torch.linalg.matrix_rank(sym / len(group)).item()


def test_forward_is_the_change_of_basis_contraction_and_broadcasts():
    rtp = ReducedTensorProducts("ijk=jik", i="1o", k="0e + 2e")
    x, y, z = torch.randn(5, 1, 3, dtype=F64), torch.randn(4, 3, dtype=F64), torch.randn(1, 1, 6, dtype=F64)
    expected = torch.einsum("zijk,...i,...j,...k->...z", rtp._change_of_basis64, x, y, z)
    assert rtp(x, y, z).shape == (5, 4, rtp.irreps_out.dim)
    assert torch.allclose(rtp(x, y, z), expected, atol=1e-13)


def test_antisymmetric_pair_cancels():
    rtp = ReducedTensorProducts("ij=-ji", i="1o")
    x, y = torch.randn(2, 3)
    assert torch.allclose(rtp(x, y) + rtp(y, x), torch.zeros(3), atol=1e-6)


def test_empty_symmetric_space_gives_empty_output():
    rtp = ReducedTensorProducts("ij=-ji", i="0e")  # e3nn fails here (torch.cat of nothing)
    assert rtp.irreps_out == Irreps("") and rtp.change_of_basis.shape == (0, 1, 1)
    assert rtp(torch.randn(4, 1), torch.randn(4, 1)).shape == (4, 0)
    assert ReducedTensorProducts("ij=ji", i="1o", filter_ir_out=["1e"]).irreps_out.dim == 0
    for empty in ("", "0x1o"):  # empty irreps or zero multiplicities: shapes (..., 0), no error
        rtp = ReducedTensorProducts("ij=ji", i=empty)
        assert rtp.change_of_basis.shape == (0, 0, 0) and rtp(torch.randn(2, 0), torch.randn(2, 0)).shape == (2, 0)
    rtp = ReducedTensorProducts("ij=ji", i="0x1o + 1o")
    assert rtp.irreps_out == Irreps("0e + 2e") and rtp(torch.randn(3), torch.randn(3)).shape == (6,)


@pytest.mark.parametrize("formula,kwargs,match", [
    ("ij=jk", dict(i="1o"), "'jk' is not a permutation of 'ij'"),
    ("ii", dict(i="1o"), "distinct indices"),
    ("-ij=ji", dict(i="1o"), "takes no sign"),
    ("ij=-ij", dict(i="1o", j="1o"), "inconsistent symmetries"),
    ("ij=ji=-ji", dict(i="1o"), "inconsistent symmetries"),
    ("ij=ji", dict(), "index i has no irreps"),
    ("ij", dict(i="1o"), "index j has no irreps"),
    ("ij=ji", dict(i="1o", j="2e"), "irreps of i and j should be the same"),
    ("ij=ji", dict(i="1o", k="1o"), "index k has irreps but does not appear"),
])
def test_bad_formulas_raise_one_clear_error(formula, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match) as info:
        ReducedTensorProducts(formula, **kwargs)
    assert isinstance(info.value, RuntimeError)  # e3nn raises RuntimeError for these
    with pytest.raises((RuntimeError, AssertionError, ValueError)):
        e3nn_reference(formula, kwargs)


def test_bad_arguments():
    with pytest.raises(TypeError, match="unexpected keyword argument 'ij'"):
        ReducedTensorProducts("ij=ji", ij="1o")
    with pytest.raises(InvalidArgumentError, match="filter_ir_out"):
        ReducedTensorProducts("ij=ji", i="1o", filter_ir_out=["spam"])
    rtp = ReducedTensorProducts("ij=ji", i="1o")
    with pytest.raises(InvalidArgumentError, match="expected 2 inputs"):
        rtp(torch.randn(3))
    with pytest.raises(InvalidArgumentError, match=r"input 1: expected shape \(\.\.\., 3\)"):
        rtp(torch.randn(3), torch.randn(4))


@pytest.mark.parametrize("formula,kwargs", [
    ("ijkl=jikl=klij", dict(i="2e")),
    ("ijkl=jikl=ijlk", dict(i="0e + 1o", k="1o")),
    pytest.param("ijkl=jikl=klij", dict(i="0e + 1o + 2e"), marks=pytest.mark.slow),  # 6561 entries
])
def test_four_indices_with_d_equal_e3nn(formula, kwargs):
    ref = e3nn_reference(formula, kwargs)
    with default_dtype(F64):
        ours = ReducedTensorProducts(formula, **kwargs)
    assert ours.irreps_out == ref.irreps_out and sorted(ours.state_dict()) == sorted(ref.state_dict())
    assert (ours.change_of_basis - ref.change_of_basis).abs().max().item() < 1e-12
    xs = [irreps.randn(3, -1, dtype=F64) for irreps in ours.irreps_in]
    with default_dtype(F64):
        a = ref(*xs)
    assert (ours(*xs) - a).abs().max().item() < 1e-12
