"""Irrep and Irreps: syntax, algebra, invariants (hypothesis) and their matrices."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from equiscale.o3 import Irrep, Irreps

F64 = torch.float64


def rotations(n, seed):
    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix())


# --------------------------------------------------------------------------- Irrep
def test_irrep_construction_and_properties():
    assert Irrep("1o") == Irrep(1, -1) == Irrep((1, -1)) == Irrep(Irrep(1, -1)) == (1, -1)
    assert Irrep("2y") == Irrep(2, 1) and Irrep("3y") == Irrep(3, -1)  # y: parity (-1)^l
    assert Irrep(" 10e ") == Irrep(10, 1)
    ir = Irrep(2, -1)
    assert (ir.l, ir.p, ir.dim, repr(ir), str(ir)) == (2, -1, 5, "2o", "2o")
    assert Irrep("0e").is_scalar() and not Irrep("0o").is_scalar() and not Irrep("1e").is_scalar()
    l, p = Irrep("3e")
    assert (l, p) == (3, 1)


def test_irrep_order_hash_iterator():
    irs = [Irrep("1e"), Irrep("0e"), Irrep("1o"), Irrep("0o"), Irrep("2e")]
    assert sorted(irs) == [Irrep("0o"), Irrep("0e"), Irrep("1o"), Irrep("1e"), Irrep("2e")]
    assert len({Irrep("1o"), Irrep(1, -1), Irrep("1e")}) == 2
    assert {Irrep("1o"): 3}[Irrep(1, -1)] == 3
    it = Irrep.iterator()
    assert [next(it) for _ in range(6)] == ["0e", "0o", "1o", "1e", "2e", "2o"]
    assert list(Irrep.iterator(2)) == [Irrep(x) for x in ["0e", "0o", "1o", "1e", "2e", "2o"]]


def test_irrep_product_selection_rule():
    for l1 in range(4):
        for l2 in range(4):
            for p1 in (1, -1):
                for p2 in (1, -1):
                    out = list(Irrep(l1, p1) * Irrep(l2, p2))
                    expected = [Irrep(l, p1 * p2) for l in range(abs(l1 - l2), l1 + l2 + 1)]
                    assert out == expected
    assert Irrep("2e") in list(Irrep("1o") * "1o")
    assert 3 * Irrep("1e") == Irreps("3x1e")
    assert Irrep("1o") + Irrep("2o") == Irreps("1x1o + 1x2o")
    assert Irrep("0e") + "2x1o" == Irreps("0e + 2x1o")


@pytest.mark.parametrize("bad", [(-1, 1), (1, 0), (1, 2), (1.5, 1), ("1", None), ("q", None)])
def test_irrep_bad_input(bad):
    with pytest.raises(ValueError):
        Irrep(*bad)


# --------------------------------------------------------------------------- Irreps syntax
def test_irreps_basic():
    x = Irreps("16x0e + 8x1o")
    assert x == Irreps([(16, "0e"), (8, (1, -1))]) == Irreps([(16, Irrep(0, 1)), (8, Irrep("1o"))])
    assert (x.dim, x.lmax, x.num_irreps, len(x)) == (40, 1, 24, 2)
    assert x.ls == [0] * 16 + [1] * 8
    assert x.slices() == [slice(0, 16), slice(16, 40)]
    assert repr(x) == str(x) == "16x0e+8x1o"
    mul, ir = x[1]
    assert (mul, ir) == (8, Irrep("1o")) and x[1].mul == 8 and x[1].ir == "1o" and x[1].dim == 24
    assert isinstance(x[1:], Irreps) and x[1:] == "8x1o"
    assert Irreps(Irrep("2e")) == "1x2e" and Irreps("2e") == Irreps(["2e"])
    assert Irreps() == Irreps("") == Irreps(None) == "" and Irreps().dim == 0
    assert Irreps(x) is not None and Irreps(x) == x
    assert Irreps("2 x 1o") == "2x1o"
    with pytest.raises(ValueError):
        Irreps().lmax


def test_irreps_equality_with_strings_and_containment():
    x = Irreps("2x0e + 1o")
    assert x == "2x0e+1x1o" and x == "2x0e + 1o" and not (x != "2x0e+1o")
    assert x != "2x0e" and x != "not irreps" and not (x == "1q")
    assert hash(x) == hash(Irreps("2x0e+1x1o"))
    assert "1o" in x and Irrep("0e") in x and (0, 1) in x and "1e" not in x
    assert x.count("0e") == 2 and Irreps("0e + 1o + 3x0e").count(Irrep("0e")) == 4
    assert x.count("5o") == 0


def test_irreps_arithmetic():
    x = Irreps("1e + 0e")
    assert x + "2o" == "1e + 0e + 2o" and "2o" + x == "2o + 1e + 0e"
    assert x + Irrep("1o") == "1e+0e+1o"
    assert x * 2 == "1e + 0e + 1e + 0e" and 2 * x == x * 2 and isinstance(2 * x, Irreps)
    assert (Irreps("2x1e") * 3).simplify() == "6x1e"
    with pytest.raises(NotImplementedError):
        x * x


def test_simplify_sort_regroup_examples():
    assert Irreps("1e + 1e + 0e").simplify() == "2x1e+1x0e"
    assert Irreps("1e + 1e + 0e + 1e").simplify() == "2x1e+1x0e+1x1e"
    assert Irreps("1e + 0x0o + 1e").simplify() == "2x1e"
    assert Irreps("4x0e + 0x1o + 2x3e").remove_zero_multiplicities() == "4x0e+2x3e"
    s = Irreps("2o + 1e + 0e + 1e").sort()
    assert s.irreps == "0e + 1e + 1e + 2o" and s.p == (3, 1, 0, 2) and s.inv == (2, 1, 3, 0)
    assert Irreps("1e + 0e + 1e + 0x2e").regroup() == "1x0e+2x1e"
    assert Irreps("1e + 2e + 0e").filter(keep=["0e", "1e"]) == "1e + 0e"
    assert Irreps("1e + 2e + 0e").filter(drop="2e + 2x1e") == "0e"
    assert Irreps("1e + 2e + 0e").filter(lmax=1) == "1e + 0e"
    assert Irreps("1e + 2x2e").filter(lambda mul_ir: mul_ir.mul > 1) == "2x2e"
    assert Irreps.spherical_harmonics(3) == "0e + 1o + 2e + 3o"
    assert Irreps.spherical_harmonics(2, p=1) == "0e + 1e + 2e"


# "1y" is valid e3nn syntax (parity (-1)^l), so it parses; the rest must raise and name the part.
@pytest.mark.parametrize("text, part", [
    ("3x1q", '"q"'), ("-2x0e", '"-2"'), ("1x", '"1x"'), ("0e+", "stray"), ("1z", '"z"'),
    ("x0e", '""'), ("1.5x0e", '"1.5"'), ("0e + + 1o", "stray"), ("2x", '"2x"'), ("e", '"e"'),
    ("3x-1o", '"-1o"'),
])
def test_malformed_irreps_strings(text, part):
    with pytest.raises(ValueError, match=text.replace("+", r"\+").replace(".", r"\.")) as err:
        Irreps(text)
    assert part in str(err.value)


def test_y_parity_is_e3nn_syntax():
    assert Irreps("1y + 2x2y") == "1o + 2x2e"


@pytest.mark.parametrize("bad", [[(1, "1q")], [(-1, "0e")], [(1.0, "0e")], [(1, 2, 3)], [5]])
def test_irreps_bad_lists(bad):
    with pytest.raises(ValueError):
        Irreps(bad)


def test_randn():
    x = Irreps("5x0e + 10x1o")
    assert x.randn(5, -1, 5).shape == (5, 35, 5)
    t = Irreps("3x2o").randn(2, -1, 3, normalization="norm", dtype=F64)
    assert t.dtype == F64
    norms = t.reshape(2, 3, 5, 3).norm(dim=2)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert x.randn(-1, requires_grad=True).requires_grad
    with pytest.raises(ValueError):
        x.randn(3, 4)
    with pytest.raises(ValueError):
        x.randn(-1, normalization="max")


# --------------------------------------------------------------------------- hypothesis
terms = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12), st.sampled_from([1, -1])),
                 max_size=8)


def to_irreps(ts):
    return Irreps([(mul, (l, p)) for mul, l, p in ts])


@settings(max_examples=200, deadline=None)
@given(terms, st.sampled_from(["+", " + ", "  +"]))
def test_str_round_trip(ts, sep):
    x = to_irreps(ts)
    assert Irreps(str(x)) == x and Irreps(repr(x)) == x
    assert Irreps(sep.join(f"{m} x {ir}" if i % 2 else f"{m}x{ir}" for i, (m, ir) in enumerate(x))) == x


@settings(max_examples=200, deadline=None)
@given(terms)
def test_simplify_sort_invariants(ts):
    x = to_irreps(ts)
    s, r, srt = x.simplify(), x.regroup(), x.sort()
    for y in (s, r, srt.irreps, x.remove_zero_multiplicities()):
        assert y.dim == x.dim and y.num_irreps == x.num_irreps
    assert s.simplify() == s and all(mul > 0 for mul, _ in s)
    assert all(a.ir != b.ir for a, b in zip(s, s[1:]))
    assert [ir for _, ir in r] == sorted({ir for mul, ir in x if mul > 0})
    assert sorted(srt.p) == list(range(len(x))) and all(srt.p[srt.inv[i]] == i for i in range(len(x)))
    assert all(srt.irreps[srt.p[i]] == x[i] for i in range(len(x)))
    assert [ir for _, ir in srt.irreps] == sorted(ir for _, ir in x)
    assert sum(m * (2 * l + 1) for m, l, _ in ts) == x.dim


# --------------------------------------------------------------------------- matrices
def test_irreps_D_is_block_diagonal_of_irrep_D():
    R = rotations(3, 0)
    for signs in (torch.ones(3, dtype=F64), torch.tensor([1.0, -1.0, -1.0], dtype=F64)):
        M = signs[:, None, None] * R
        x = Irreps("2x0e + 0o + 1o + 3x1e + 2e + 0x3o + 3o")
        D = x.D_from_matrix(M)
        for z in range(3):
            blocks = [Irrep(ir).D_from_matrix(M[z]) for mul, ir in x for _ in range(mul)]
            torch.testing.assert_close(D[z], torch.block_diag(*blocks), atol=1e-15, rtol=0)


def test_all_parametrisations_agree():
    from equiscale import o3
    R = rotations(5, 1)
    a, b, c = o3.matrix_to_angles(R)
    q = o3.matrix_to_quaternion(R)
    axis, angle = o3.matrix_to_axis_angle(R)
    k = torch.tensor([0, 1, 0, 1, 1], dtype=F64)
    x = Irreps("0e + 0o + 1o + 1e + 2e + 3o + 4e")
    ref = x.D_from_matrix(R)
    for D in (x.D_from_angles(a, b, c), x.D_from_quaternion(q), x.D_from_axis_angle(axis, angle)):
        torch.testing.assert_close(D, ref, atol=1e-13, rtol=0)
    with_k = x.D_from_matrix(torch.where(k[:, None, None] > 0, -R, R))
    torch.testing.assert_close(x.D_from_angles(a, b, c, k), with_k, atol=1e-13, rtol=0)
    torch.testing.assert_close(x.D_from_quaternion(q, k), with_k, atol=1e-13, rtol=0)
    for ir in (Irrep("2o"), Irrep("3e")):
        torch.testing.assert_close(ir.D_from_angles(a, b, c, k),
                                   ir.D_from_matrix(torch.where(k[:, None, None] > 0, -R, R)),
                                   atol=1e-13, rtol=0)
        torch.testing.assert_close(ir.D_from_quaternion(q), ir.D_from_matrix(R), atol=1e-13, rtol=0)
        torch.testing.assert_close(ir.D_from_axis_angle(axis, angle), ir.D_from_matrix(R),
                                   atol=1e-13, rtol=0)


def test_D_from_matrix_bad_input():
    R = rotations(2, 2)
    for bad in (R * 1.1, R[..., :2], R + 1e-3, torch.ones(2, 3, 3, dtype=F64)):
        with pytest.raises(ValueError):
            Irreps("0e + 1o").D_from_matrix(bad)
        with pytest.raises(ValueError):
            Irrep("2e").D_from_matrix(bad)
    assert Irreps("0e + 1o").D_from_matrix(torch.eye(3)).dtype == torch.float32
    assert math.isclose(Irrep("1o").D_from_matrix(-torch.eye(3, dtype=F64)).trace().item(), -3)
