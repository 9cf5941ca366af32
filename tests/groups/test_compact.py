"""SO(2), O(2), SO(3), O(3): group axioms, Haar sampling, irreps, bad input."""
import math

import pytest
import torch

from equiscale.groups import C, O2, O3, SO2, SO3

from .conftest import e3nn_float64, needs_o3

F64 = torch.float64
GROUPS = [SO2(), O2(), SO3(), O3()]
IDS = [g.name for g in GROUPS]


def rot(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=F64)


def small_irreps(G):
    """Irreps that need no Wigner-D beyond l = 1 (for use before equiscale.o3 exists)."""
    if G.name in ("SO(2)", "O(2)"):
        return G.irreps(5)
    return [r for r in G.irreps(1)]


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_group_axioms(G):
    gen = torch.Generator().manual_seed(0)
    a, b, c = (G.sample(100, generator=gen) for _ in range(3))
    d = a.shape[-1]
    assert a.dtype == F64 and a.shape == (100, d, d)
    eye = torch.eye(d, dtype=F64)
    assert torch.equal(G.identity, eye)
    assert (G.compose(G.identity, a) - a).abs().max() == 0
    assert (G.compose(a, G.inverse(a)) - eye).abs().max() < 1e-14
    assert (G.compose(G.inverse(a), a) - eye).abs().max() < 1e-14
    assert (G.compose(G.compose(a, b), c) - G.compose(a, G.compose(b, c))).abs().max() < 1e-14
    assert (G.compose(a, b) - a @ b).abs().max() == 0
    G.validate(G.compose(a, b))  # products stay in the group


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_sampling_is_haar(G):
    """Moments of the standard character under Haar measure: E[chi] = 0, E[chi^2] = #invariants of V(x)V."""
    g = G.sample(40000, generator=torch.Generator().manual_seed(3))
    chi = g.diagonal(dim1=-2, dim2=-1).sum(-1)
    det = torch.linalg.det(g)
    assert abs(chi.mean()) < 0.03
    # SO(2): R (x) R holds 2 invariants; O(2), SO(3), O(3): 1
    assert abs((chi**2).mean() - (2 if G.name == "SO(2)" else 1)) < 0.05
    if G.name.startswith("SO"):
        assert bool((det > 0).all())
    else:
        assert abs(det.mean()) < 0.03 and bool(((det.abs() - 1).abs() < 1e-12).all())
    assert G.sample((2, 3)).shape == (2, 3) + g.shape[-2:]


def test_so2_sample_angles_uniform():
    g = SO2().sample(40000, generator=torch.Generator().manual_seed(1))
    theta = torch.atan2(g[:, 1, 0], g[:, 0, 0])
    hist = torch.histc(theta, bins=8, min=-math.pi, max=math.pi) / 40000
    assert (hist - 1 / 8).abs().max() < 0.01


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_irreps_are_orthogonal_homomorphisms(G):
    gen = torch.Generator().manual_seed(2)
    a, b = G.sample(50, generator=gen), G.sample(50, generator=gen)
    for rep in small_irreps(G):
        ma, mb, mab = rep(a), rep(b), rep(G.compose(a, b))
        eye = torch.eye(rep.dim, dtype=F64)
        assert ma.dtype == F64 and ma.shape == (50, rep.dim, rep.dim)
        assert (ma.transpose(1, 2) @ ma - eye).abs().max() < 1e-13, rep.name
        assert (mab - ma @ mb).abs().max() < 1e-12, rep.name
        assert (rep(G.identity) - eye).abs().max() < 1e-15
        assert rep.max_frequency == rep.irrep_id[1 if G.name == "O(2)" else 0]


@needs_o3
@pytest.mark.parametrize("G", [SO3(), O3()], ids=["SO(3)", "O(3)"])
def test_higher_degree_irreps_are_orthogonal_homomorphisms(G):
    gen = torch.Generator().manual_seed(4)
    a, b = G.sample(20, generator=gen), G.sample(20, generator=gen)
    for rep in G.irreps(4):
        ma, mb, mab = rep(a), rep(b), rep(G.compose(a, b))
        eye = torch.eye(rep.dim, dtype=F64)
        assert (ma.transpose(1, 2) @ ma - eye).abs().max() < 1e-12, rep.name
        assert (mab - ma @ mb).abs().max() < 1e-12, rep.name


@needs_o3
def test_o3_irreps_match_e3nn():
    e3nn_o3 = pytest.importorskip("e3nn.o3")
    g = O3().sample(8, generator=torch.Generator().manual_seed(5))
    for l in range(4):
        for p in (1, -1):
            with e3nn_float64():
                ref = e3nn_o3.Irrep(l, p).D_from_matrix(g)
            assert (O3().irrep(l, p)(g) - ref).abs().max() < 1e-12, (l, p)
            rot = g * torch.linalg.det(g).sign()[:, None, None]
            with e3nn_float64():
                ref = e3nn_o3.Irrep(l, 1).D_from_matrix(rot)
            assert (SO3().irrep(l)(rot) - ref).abs().max() < 1e-12, l


def test_planar_irrep_matrices():
    t = 0.7
    g = rot(t)
    s = torch.diag(torch.tensor([1.0, -1.0], dtype=F64))
    for k in range(5):
        want = rot(k * t) if k else torch.ones(1, 1, dtype=F64)
        assert (SO2().irrep(k)(g) - want).abs().max() < 1e-15
    assert (O2().irrep(1, 3)(g @ s) - rot(3 * t) @ s).abs().max() < 1e-15
    assert (O2().irrep(1, 3)(g) - rot(3 * t)).abs().max() < 1e-15
    assert O2().irrep(1, 0)(torch.stack([g, g @ s])).flatten().tolist() == [1.0, -1.0]
    assert O2().irrep(0, 0)(g @ s).item() == 1.0


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_standard_representation_is_identity_map(G):
    g = G.sample(10, generator=torch.Generator().manual_seed(6))
    std = G.standard_representation()
    assert std.dim == g.shape[-1] and std.max_frequency == 1
    assert (std(g) - g).abs().max() == 0
    assert std.irrep_id == {"SO(2)": (1,), "O(2)": (1, 1), "SO(3)": (1,), "O(3)": (1, -1)}[G.name]
    triv = G.trivial_representation()
    assert triv.dim == 1 and bool((triv(g) == 1).all())


def test_o3_low_degree_parities():
    g = O3().sample(10, generator=torch.Generator().manual_seed(7))
    det = torch.linalg.det(g)
    assert (O3().irrep(0, -1)(g).flatten() - det).abs().max() < 1e-14
    assert (O3().irrep(1, 1)(g) - g * det[:, None, None]).abs().max() < 1e-14
    assert (O3().irrep(1, -1)(-torch.eye(3, dtype=F64)) + torch.eye(3, dtype=F64)).abs().max() == 0


def test_irreps_lists_in_canonical_order():
    assert [r.irrep_id for r in SO2().irreps(2)] == [(0,), (1,), (2,)]
    assert [r.irrep_id for r in O2().irreps(2)] == [(0, 0), (1, 0), (1, 1), (1, 2)]
    assert [r.irrep_id for r in SO3().irreps(2)] == [(0,), (1,), (2,)]
    assert [r.irrep_id for r in O3().irreps(1)] == [(0, -1), (0, 1), (1, -1), (1, 1)]  # e3nn sort


def test_groups_are_values():
    assert SO2() == SO2() and hash(SO3()) == hash(SO3()) and SO2() != O2() and SO3() != O3()
    assert SO2() != C(4)


def test_bad_irrep_ids():
    for G, ids in [(SO2(), (-1,)), (SO2(), (1, 1)), (O2(), (0, 2)), (O2(), (2, 0)), (O2(), (1,)),
                   (SO3(), (-1,)), (O3(), (1, 0)), (O3(), (1,))]:
        with pytest.raises(ValueError, match="no irrep"):
            G.irrep(*ids)
    with pytest.raises(ValueError, match="max_frequency"):
        SO2().irreps(-1)


def test_bad_elements():
    so2, so3 = SO2().sample(3), SO3().sample(3)
    with pytest.raises(ValueError, match=r"\(3, 3\) matrices"):
        SO3().compose(so2, so2)  # elements of another group
    with pytest.raises(ValueError, match=r"\(2, 2\) matrices"):
        SO2().compose(so3, so3)
    with pytest.raises(ValueError, match="determinant"):
        SO2().compose(torch.diag(torch.tensor([1.0, -1.0], dtype=F64)), so2)
    with pytest.raises(ValueError, match="determinant"):
        SO3().irrep(1)(-torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match="not orthogonal"):
        O2().inverse(2 * torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="real matrices"):
        O3().compose(torch.tensor([1, 2]) > 0, so3)
    with pytest.raises(ValueError, match=r"\(2, 2\) matrices"):
        SO2().compose(torch.tensor(3), so2)  # an element of C(n)
    with pytest.raises(ValueError, match="sample size"):
        SO3().sample(-1)
