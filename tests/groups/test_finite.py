"""C(n) and D(n): group axioms, irreps, characters, Schur, bad input.

References are built independently in this file: elements as explicit 2x2 matrices, and
intertwiner spaces with scipy's null_space.
"""
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from equiscale.groups import C, D, CyclicGroup

GROUPS = [C(1), C(2), C(3), C(4), C(5), C(6), D(1), D(2), D(3), D(4), D(5), D(6)]
IDS = [g.name for g in GROUPS]


def plane_matrix(group, index: int) -> np.ndarray:
    """The element as a 2x2 matrix, built from the documented convention (independent code)."""
    n = group.n
    k, f = index % n, index // n
    t = 2 * math.pi * k / n
    r = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return r @ np.diag([1.0, -1.0]) if f else r


def character_norm(group, irrep_id) -> int:
    """<chi, chi> / |G| by the type of the irrep: 2 for C(n)'s 2d irreps (complex type), else 1."""
    if isinstance(group, CyclicGroup) and 0 < irrep_id[0] and 2 * irrep_id[0] != group.n:
        return 2
    return 1


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_compose_matches_plane_matrices(G):
    """compose(a, b) is the element whose 2x2 matrix is M(a) @ M(b) (a after b)."""
    mats = [plane_matrix(G, i) for i in range(G.order)]
    table = G.cayley_table
    for a in range(G.order):
        for b in range(G.order):
            assert np.abs(mats[int(table[a, b])] - mats[a] @ mats[b]).max() < 1e-12
    # the matrices of distinct elements are distinct (the indexing is a bijection)
    flat = np.round(np.stack(mats).reshape(G.order, -1), 9)
    assert len({tuple(r) for r in flat}) == G.order


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_group_axioms(G):
    e = G.elements()
    assert G.order == len(e) and int(G.identity) == 0
    assert torch.equal(G.compose(G.identity, e), e) and torch.equal(G.compose(e, G.identity), e)
    assert torch.equal(G.compose(e, G.inverse(e)), torch.zeros_like(e))
    assert torch.equal(G.compose(G.inverse(e), e), torch.zeros_like(e))
    gen = torch.Generator().manual_seed(1)
    a, b, c = G.sample(200, generator=gen), G.sample(200, generator=gen), G.sample(200, generator=gen)
    assert torch.equal(G.compose(G.compose(a, b), c), G.compose(a, G.compose(b, c)))
    # each row of the Cayley table is a permutation (Latin square)
    table = G.cayley_table
    assert torch.equal(table.sort(1).values, e.expand(G.order, -1))
    assert torch.equal(table.sort(0).values, e[:, None].expand(-1, G.order))


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_generators_generate(G):
    reached = {0}
    frontier = [0]
    while frontier:
        frontier = [int(G.compose(g, h)) for h in frontier for g in G.generators
                    if int(G.compose(g, h)) not in reached]
        reached.update(frontier)
    assert reached == set(range(G.order))


def test_sample_is_uniform_and_batched():
    G = D(3)
    s = G.sample(60000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(s, minlength=6).double() / 60000
    assert (counts - 1 / 6).abs().max() < 0.01
    assert G.sample((2, 3)).shape == (2, 3) and G.sample(5).dtype == torch.int64


def test_batched_compose_broadcasts():
    G = D(4)
    a = torch.arange(8)[:, None]
    b = torch.arange(8)[None, :]
    assert torch.equal(G.compose(a, b), G.cayley_table)


def test_groups_are_values():
    assert C(4) == C(4) and hash(C(4)) == hash(C(4)) and C(4) != C(5) and C(4) != D(4)
    assert len({D(3), D(3), C(3)}) == 2
    with pytest.raises(Exception):
        C(4).n = 5  # frozen


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_irreps_are_orthogonal_homomorphisms(G):
    e = G.elements()
    a, b = e[:, None], e[None, :]
    for rep in G.irreps():
        m = rep(e)
        assert m.dtype == torch.float64 and m.shape == (G.order, rep.dim, rep.dim)
        eye = torch.eye(rep.dim, dtype=torch.float64)
        assert (m.transpose(1, 2) @ m - eye).abs().max() < 1e-14
        assert (rep(G.compose(a, b)) - rep(a) @ rep(b)).abs().max() < 1e-13
        assert (rep(G.identity) - eye).abs().max() == 0
        assert G.irrep(*rep.irrep_id).dim == rep.dim


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_character_orthogonality_and_completeness(G):
    e = G.elements()
    irreps = G.irreps()
    chi = torch.stack([r.character(e) for r in irreps])  # (irreps, order)
    gram = chi @ chi.T
    expected = torch.diag(torch.tensor([G.order * character_norm(G, r.irrep_id) for r in irreps],
                                       dtype=torch.float64))
    assert (gram - expected).abs().max() < 1e-12
    # completeness: sum_i d_i^2 / <chi_i, chi_i> = |G| for the real irreps of a finite group
    assert sum(r.dim**2 / character_norm(G, r.irrep_id) for r in irreps) == G.order


def _commutant_dim(rho_a: np.ndarray, rho_b: np.ndarray) -> int:
    """dim {X : rho_a(g) X = X rho_b(g) for all g} with column-major vec (independent of the library)."""
    rows = []
    for ma, mb in zip(rho_a, rho_b):
        da, db = ma.shape[0], mb.shape[0]
        rows.append(np.kron(np.eye(db), ma) - np.kron(mb.T, np.eye(da)))
    return scipy.linalg.null_space(np.concatenate(rows)).shape[1]


@pytest.mark.parametrize("G", [C(4), C(5), D(3), D(4), D(6)], ids=lambda g: g.name)
def test_schur_count(G):
    e = G.elements()
    irreps = G.irreps()
    mats = [r(e).numpy() for r in irreps]
    for i, ri in enumerate(irreps):
        for j, rj in enumerate(irreps):
            want = character_norm(G, ri.irrep_id) if i == j else 0
            assert _commutant_dim(mats[i], mats[j]) == want, (ri.irrep_id, rj.irrep_id)


def test_specific_irrep_matrices():
    # C(6) irrep(2) at a=1: rotation by 2*2pi/6; C(4) irrep(2): (-1)^a
    r = C(6).irrep(2)(1)
    t = 2 * math.pi * 2 / 6
    assert torch.allclose(r, torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]],
                                          dtype=torch.float64), atol=1e-15)
    assert C(4).irrep(2)(torch.arange(4)).flatten().tolist() == [1, -1, 1, -1]
    # D(4): (1,1) on s = diag(1,-1); (0,2) and (1,2) on r and s
    assert torch.allclose(D(4).irrep(1, 1)(4), torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64)))
    assert D(4).irrep(0, 2)(torch.tensor([1, 4])).flatten().tolist() == [-1, 1]
    assert D(4).irrep(1, 2)(torch.tensor([1, 4])).flatten().tolist() == [-1, -1]
    assert D(4).irrep(1, 0)(torch.tensor([1, 4, 5])).flatten().tolist() == [1, -1, -1]


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_standard_representation_is_the_plane_action(G):
    e = G.elements()
    ref = torch.tensor(np.stack([plane_matrix(G, i) for i in range(G.order)]))
    std = G.standard_representation()
    assert std.dim == 2 and (std(e) - ref).abs().max() < 1e-15
    if G.n >= 3:
        assert std.irrep_id == ((1,) if isinstance(G, CyclicGroup) else (1, 1))
    else:
        assert std.irrep_id is None


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_regular_representation(G):
    e = G.elements()
    reg = G.regular_representation()
    m = reg(e)  # (g, row, col)
    assert reg.dim == G.order
    # rho(g) e_h = e_{gh}
    table = G.cayley_table
    for g in range(G.order):
        for h in range(G.order):
            col = m[g, :, h]
            assert col[int(table[g, h])] == 1 and col.sum() == 1
    assert (reg(G.compose(e[:, None], e[None, :])) - reg(e[:, None]) @ reg(e[None, :])).abs().max() == 0
    assert torch.equal(reg.character(e), torch.tensor([G.order] + [0] * (G.order - 1), dtype=torch.float64))


def test_trivial_representation():
    for G in (C(3), D(4)):
        t = G.trivial_representation()
        assert t.dim == 1 and torch.equal(t(G.elements()), torch.ones(G.order, 1, 1, dtype=torch.float64))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_bad_n(bad):
    for ctor in (C, D):
        with pytest.raises(ValueError, match="n"):
            ctor(bad)


def test_bad_irrep_ids():
    with pytest.raises(ValueError, match=r"C\(4\) has no irrep \(3,\)"):
        C(4).irrep(3)
    with pytest.raises(ValueError, match="no irrep"):
        C(5).irrep(-1)
    with pytest.raises(ValueError, match="no irrep"):
        C(4).irrep(1, 0)
    with pytest.raises(ValueError, match=r"D\(4\) has no irrep \(0, 1\)"):
        D(4).irrep(0, 1)
    with pytest.raises(ValueError, match="no irrep"):
        D(5).irrep(1, 3)
    with pytest.raises(ValueError, match="no irrep"):
        D(5).irrep(2, 0)
    with pytest.raises(ValueError, match="integer"):
        D(5).irrep(1, 1.0)


def test_bad_elements():
    with pytest.raises(ValueError, match="out of range"):
        C(4).compose(4, 0)
    with pytest.raises(ValueError, match="out of range"):
        D(3).inverse(torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="out of range"):
        C(4).irrep(1)(7)
    with pytest.raises(ValueError, match="integer indices"):
        C(4).compose(torch.eye(2, dtype=torch.float64), 1)  # an SO(2) element
    with pytest.raises(ValueError, match="integer indices"):
        D(4).regular_representation()(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="sample size"):
        C(4).sample(-2)
