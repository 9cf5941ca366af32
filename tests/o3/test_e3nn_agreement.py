"""equiscale.o3 (irreps, rotations, Wigner-D, 3j) gives e3nn 0.6's numbers (test-only dependency).

e3nn builds its matrices in torch's default dtype, so float64 references are taken with the
default dtype set to float64 inside a try/finally (here only, never in equiscale).
"""
import itertools

import pytest
import torch

from tests.helpers import default_dtype
from hypothesis import given, settings
from hypothesis import strategies as st

from equiscale import o3

pytest.importorskip("e3nn")
from e3nn import o3 as e3  # noqa: E402

F64 = torch.float64
TOL = 1e-10


def seeded(fn, *args, **kwargs):
    with torch.random.fork_rng():
        torch.manual_seed(1234)
        return fn(*args, **kwargs)


def triples(lmax):
    return [(a, b, c) for a, b, c in itertools.product(range(lmax + 1), repeat=3)
            if abs(b - c) <= a <= b + c]


def assert_close(a, b, tol=TOL):
    if isinstance(a, (tuple, list)):
        for x, y in zip(a, b):
            assert_close(x, y, tol)
        return
    assert a.shape == b.shape and a.dtype == b.dtype
    assert (a - b).abs().max().item() <= tol


# --------------------------------------------------------------------------- 3j
@pytest.mark.parametrize("lmax, slow", [(4, False), pytest.param(8, True, marks=pytest.mark.slow)])
def test_wigner_3j(lmax, slow):
    for ls in triples(lmax):
        if slow and max(ls) <= 4:
            continue
        with default_dtype(F64):
            ref = e3.wigner_3j(*ls)
        assert_close(o3.wigner_3j(*ls, dtype=F64), ref, 1e-14)


def test_wigner_3j_high_l_sample_and_default_dtype():
    for ls in [(8, 8, 8), (8, 1, 7), (5, 8, 4), (6, 6, 0)]:
        with default_dtype(F64):
            ref = e3.wigner_3j(*ls)
        assert_close(o3.wigner_3j(*ls, dtype=F64), ref, 1e-14)
    assert_close(o3.wigner_3j(2, 1, 3), e3.wigner_3j(2, 1, 3), 1e-7)  # default dtype, float32


def test_generators_and_change_of_basis():
    with default_dtype(F64):
        refs = [(e3.so3_generators(l), e3.su2_generators(l), e3.change_basis_real_to_complex(l))
                for l in range(6)]
    for l, (so3, su2, q) in enumerate(refs):
        assert_close(o3.so3_generators(l, dtype=F64), so3, 1e-14)
        assert_close(o3.su2_generators(l, dtype=torch.complex128), su2, 1e-14)
        assert_close(o3.change_basis_real_to_complex(l, dtype=F64), q, 0)
    assert o3.su2_generators(1).dtype == e3.su2_generators(1).dtype
    assert o3.so3_generators(1).dtype == e3.so3_generators(1).dtype


# --------------------------------------------------------------------------- Wigner-D
def test_wigner_D_and_irreps_D():
    R = seeded(o3.rand_matrix, 4, dtype=F64)
    angles = o3.matrix_to_angles(R)
    q = o3.matrix_to_quaternion(R)
    axis, angle = o3.matrix_to_axis_angle(R)
    k = torch.tensor([0.0, 1.0] * 2, dtype=F64)
    M = torch.where(k[:, None, None] > 0, -R, R)  # half of them reflections
    big = o3.Irreps.spherical_harmonics(8) + "0o + 1e + 2o + 2x3e + 8e"
    small = o3.Irreps("0e + 0o + 1o + 1e + 2x2o + 3e")
    with default_dtype(F64):
        ref_wigner = [e3.wigner_D(l, *angles) for l in range(9)]
        ref = dict(matrix=e3.Irreps(str(big)).D_from_matrix(M),
                   angles=e3.Irreps(str(small)).D_from_angles(*angles, k),
                   quaternion=e3.Irreps(str(small)).D_from_quaternion(q, k),
                   axis_angle=e3.Irreps(str(small)).D_from_axis_angle(axis, angle),
                   irrep=e3.Irrep("3o").D_from_matrix(M))
    for l in range(9):
        assert_close(o3.wigner_D(l, *angles), ref_wigner[l])
    assert_close(big.D_from_matrix(M), ref["matrix"])
    assert_close(small.D_from_angles(*angles, k), ref["angles"])
    assert_close(small.D_from_quaternion(q, k), ref["quaternion"])
    assert_close(small.D_from_axis_angle(axis, angle), ref["axis_angle"])
    assert_close(o3.Irrep("3o").D_from_matrix(M), ref["irrep"])


def test_float32_inputs_agree_with_e3nn_default():
    R = seeded(o3.rand_matrix, 5)
    x = o3.Irreps("0e + 1o + 2e + 3o + 4e")
    assert_close(x.D_from_matrix(R), e3.Irreps(str(x)).D_from_matrix(R), 1e-5)


# --------------------------------------------------------------------------- rotations
def test_random_helpers_draw_the_same_numbers():
    for name, args in [("rand_matrix", (3, 2)), ("rand_angles", (4,)), ("rand_quaternion", (5,)),
                       ("rand_axis_angle", (2, 2)), ("identity_angles", (3,)),
                       ("identity_quaternion", (2,))]:
        ours = seeded(getattr(o3, name), *args, dtype=F64)
        with default_dtype(F64):
            theirs = seeded(getattr(e3, name), *args, dtype=F64)
        assert_close(ours, theirs, 1e-13)


def test_conversions():
    R1, R2 = seeded(o3.rand_matrix, 2, 20, dtype=F64)
    with default_dtype(F64):
        e_angles = [e3.matrix_to_angles(R) for R in (R1, R2)]
    a1, a2 = e_angles
    q1, q2 = o3.matrix_to_quaternion(R1), o3.matrix_to_quaternion(R2)
    ax1, an1 = o3.matrix_to_axis_angle(R1)
    ax2, an2 = o3.matrix_to_axis_angle(R2)
    xyz = R1[..., 0]
    cases = [
        ("matrix_to_angles", (R1,)), ("matrix_to_quaternion", (R1,)), ("matrix_to_axis_angle", (R1,)),
        ("angles_to_matrix", a1), ("angles_to_quaternion", a1), ("angles_to_axis_angle", a1),
        ("compose_angles", (*a1, *a2)), ("inverse_angles", a1),
        ("compose_quaternion", (q1, q2)), ("inverse_quaternion", (q1,)),
        ("quaternion_to_matrix", (q1,)), ("quaternion_to_angles", (q1,)),
        ("quaternion_to_axis_angle", (q1,)), ("axis_angle_to_quaternion", (ax1, an1)),
        ("axis_angle_to_matrix", (ax1, an1)), ("axis_angle_to_angles", (ax1, an1)),
        ("compose_axis_angle", (ax1, an1, ax2, an2)),
        ("matrix_x", (an1,)), ("matrix_y", (an1,)), ("matrix_z", (an1,)),
        ("angles_to_xyz", a1[:2]), ("xyz_to_angles", (xyz,)), ("xyz_to_angles", (3 * xyz,)),
    ]
    for name, args in cases:
        with default_dtype(F64):
            ref = getattr(e3, name)(*args)
        assert_close(getattr(o3, name)(*args), ref, 1e-12)


# --------------------------------------------------------------------------- irreps API
terms = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 6), st.sampled_from("eo")),
                 max_size=6)


@settings(max_examples=100, deadline=None)
@given(terms)
def test_irreps_api_matches(ts):
    text = " + ".join(f"{m}x{l}{p}" for m, l, p in ts)
    ours, theirs = o3.Irreps(text), e3.Irreps(text)
    assert repr(ours) == repr(theirs) and str(ours) == str(theirs)
    assert (ours.dim, ours.num_irreps, ours.ls, ours.slices()) == (
        theirs.dim, theirs.num_irreps, theirs.ls, theirs.slices())
    if ours.num_irreps:
        assert ours.lmax == theirs.lmax
    else:
        with pytest.raises(ValueError):
            ours.lmax
    for method in ("simplify", "regroup", "remove_zero_multiplicities"):
        assert repr(getattr(ours, method)()) == repr(getattr(theirs, method)())
    s_ours, s_theirs = ours.sort(), theirs.sort()
    assert (repr(s_ours.irreps), s_ours.p, s_ours.inv) == (repr(s_theirs.irreps), s_theirs.p,
                                                          s_theirs.inv)
    for ir in ("0e", "1o", "2e"):
        assert ours.count(ir) == theirs.count(ir) and (ir in ours) == (ir in theirs)
    assert repr(ours * 2) == repr(theirs * 2) and repr(ours[1:]) == repr(theirs[1:])
    assert list(o3.Irreps(theirs)) == list(ours)  # e3nn Irreps convert


def test_irrep_api_matches():
    assert [repr(x) for x in o3.Irrep.iterator(4)] == [repr(x) for x in e3.Irrep.iterator(4)]
    for a, b in itertools.product(["0e", "1o", "2e", "3o", "2y"], repeat=2):
        assert [repr(x) for x in o3.Irrep(a) * o3.Irrep(b)] == [repr(x) for x in e3.Irrep(a) * e3.Irrep(b)]
        assert (o3.Irrep(a) < o3.Irrep(b)) == (e3.Irrep(a) < e3.Irrep(b))
    assert repr(o3.Irreps.spherical_harmonics(4, p=1)) == repr(e3.Irreps.spherical_harmonics(4, p=1))
    for text in ["1y", "16x0e + 8x1o", " 2 x 1o ", "0x0e", ""]:
        assert repr(o3.Irreps(text)) == repr(e3.Irreps(text))
