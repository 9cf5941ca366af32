"""Decomposition into irreps: known answers, random bases, and failures.

Every decomposition is checked directly: Q orthogonal and Q rho(g) Q^T = blockdiag(irreps(g))
on all elements (finite groups) or on fresh random elements (compact groups), to 1e-12 in float64.
"""

import pytest
import torch

from equiscale.groups import (C, D, O2, O3, SO2, SO3, Representation, direct_sum,
                              tensor_product)

from .conftest import needs_o3

F64 = torch.float64
TOL = 1e-12


def random_orthogonal(n: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))


def check(rep, seed=123):
    """Decompose ``rep``, verify it independently, return the list of irrep ids and Q."""
    irreps, Q = rep.decompose()
    G = rep.group
    g = G.elements() if G.is_finite else G.sample(10, generator=torch.Generator().manual_seed(seed))
    assert Q.dtype == F64 and Q.shape == (rep.dim, rep.dim)
    assert (Q @ Q.T - torch.eye(rep.dim, dtype=F64)).abs().max() < TOL
    blocks = torch.zeros(g.shape[:1] + (rep.dim, rep.dim), dtype=F64)
    i = 0
    for irr in irreps:
        assert irr.group == G and irr.irrep_id is not None
        blocks[:, i : i + irr.dim, i : i + irr.dim] = irr(g)
        i += irr.dim
    assert i == rep.dim
    assert (Q @ rep(g) @ Q.T - blocks).abs().max() < TOL
    return [irr.irrep_id for irr in irreps], Q


def test_regular_c4():
    ids, _ = check(C(4).regular_representation())
    # real irreps: the 2d irrep (1,) is of complex type and appears dim/2 = 1 times
    assert ids == [(0,), (1,), (2,)]


def test_regular_d4():
    ids, _ = check(D(4).regular_representation())
    # all irreps of real type: each appears dim times
    assert ids == [(0, 0), (1, 0), (1, 1), (1, 1), (0, 2), (1, 2)]


@pytest.mark.parametrize("G", [C(1), C(2), C(5), C(8), D(1), D(2), D(3), D(6)], ids=lambda g: g.name)
def test_regular_multiplicities(G):
    ids, _ = check(G.regular_representation())
    for irr in G.irreps():
        e = G.elements()
        kind = int(round(float((irr.character(e) ** 2).sum()) / G.order))  # 1 real, 2 complex type
        assert ids.count(irr.irrep_id) == irr.dim // kind, irr.irrep_id


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_basis_regular_d5(seed):
    G = D(5)
    reg = G.regular_representation()
    Q0 = random_orthogonal(10, seed)
    rep = Representation.from_matrices(G, Q0 @ reg(G.elements()) @ Q0.T)
    ids, _ = check(rep)
    assert ids == [(0, 0), (1, 0), (1, 1), (1, 1), (1, 2), (1, 2)]


def test_random_basis_sum_of_complex_type_irreps():
    G = C(7)
    rep = direct_sum(G.irrep(3), G.irrep(1), G.irrep(3), G.irrep(0), G.irrep(3))
    ids, _ = check(rep.change_basis(random_orthogonal(rep.dim, 5)))
    assert ids == [(0,), (1,), (3,), (3,), (3,)]


def test_decomposition_is_deterministic():
    rep = D(4).regular_representation()
    _, q1 = rep.decompose()
    _, q2 = rep.decompose()
    assert torch.equal(q1, q2)


@pytest.mark.parametrize("k", range(6))
def test_so2_restricted_to_c4(k):
    ids, Q = check(SO2().irrep(k).restrict(C(4)))
    want = {0: [(0,)], 1: [(1,)], 2: [(2,), (2,)], 3: [(1,)], 4: [(0,), (0,)], 5: [(1,)]}[k]
    assert ids == want
    if k == 3:
        # frequency 3 on C(4) is frequency 1 up to the change of basis (a reflection, not a rotation)
        e = C(4).elements()
        assert (Q @ SO2().irrep(3).restrict(C(4))(e) @ Q.T - C(4).irrep(1)(e)).abs().max() < TOL
        assert torch.linalg.det(Q) < 0


@pytest.mark.parametrize("k", range(6))
def test_o2_restricted_to_d4(k):
    rep = O2().irrep(1, k) if k else O2().irrep(1, 0) + O2().irrep(0, 0)
    ids, _ = check(rep.restrict(D(4)))
    want = {0: [(0, 0), (1, 0)], 1: [(1, 1)], 2: [(0, 2), (1, 2)], 3: [(1, 1)],
            4: [(0, 0), (1, 0)], 5: [(1, 1)]}[k]
    assert ids == want


@pytest.mark.parametrize("k1,k2", [(0, 3), (1, 1), (1, 2), (2, 5), (3, 3), (4, 1)])
def test_so2_tensor_products(k1, k2):
    ids, _ = check(tensor_product(SO2().irrep(k1), SO2().irrep(k2)))
    lo, hi = abs(k1 - k2), k1 + k2
    if k1 == 0 or k2 == 0:
        want = [(hi,)]
    elif lo == 0:
        want = [(0,), (0,), (hi,)]  # R(k) (x) R(k) has a 2d invariant subspace
    else:
        want = [(lo,), (hi,)]
    assert ids == want


@pytest.mark.parametrize("k1,k2", [(1, 1), (1, 3), (2, 2)])
def test_o2_tensor_products(k1, k2):
    ids, _ = check(tensor_product(O2().irrep(1, k1), O2().irrep(1, k2)))
    lo, hi = abs(k1 - k2), k1 + k2
    want = [(0, 0), (1, 0), (1, hi)] if lo == 0 else [(1, lo), (1, hi)]
    assert ids == want


def test_o2_sum_in_random_basis():
    rep = direct_sum(O2().irrep(1, 2), O2().irrep(1, 0), O2().irrep(1, 2), O2().irrep(1, 1))
    ids, _ = check(rep.change_basis(random_orthogonal(rep.dim, 3)))
    assert ids == [(1, 0), (1, 1), (1, 2), (1, 2)]


def test_so3_vector_times_vector_low_degree_only():
    """SO(3): the l <= 1 part of 1 (x) 1 needs no Wigner-D of degree 2: with max_frequency 1 it must fail."""
    rep = tensor_product(SO3().irrep(1), SO3().irrep(1))
    with pytest.raises(ValueError, match="max_frequency"):
        rep.decompose(max_frequency=1)


@needs_o3
def test_so3_1x1():
    ids, _ = check(tensor_product(SO3().irrep(1), SO3().irrep(1)))
    assert ids == [(0,), (1,), (2,)]


@needs_o3
def test_o3_1o_x_1o_and_1o_x_1e():
    ids, _ = check(tensor_product(O3().irrep(1, -1), O3().irrep(1, -1)))
    assert ids == [(0, 1), (1, 1), (2, 1)]
    ids, _ = check(tensor_product(O3().irrep(1, -1), O3().irrep(1, 1)))
    assert ids == [(0, -1), (1, -1), (2, -1)]
    # 1o (x) 1o, restricted to SO(3), is 0 + 1 + 2 as well
    ids, _ = check(tensor_product(O3().irrep(1, -1), O3().irrep(1, -1)).restrict(SO3()))
    assert ids == [(0,), (1,), (2,)]


@needs_o3
def test_so3_2x2_in_random_basis():
    rep = tensor_product(SO3().irrep(2), SO3().irrep(2)).change_basis(random_orthogonal(25, 7))
    ids, _ = check(rep)
    assert ids == [(l,) for l in range(5)]


def test_compact_needs_max_frequency():
    user = Representation(SO2(), 2, lambda g: g)  # the standard rep, but of unknown content
    with pytest.raises(ValueError, match="max_frequency"):
        user.decompose()
    ids, _ = check_with_bound(user, 1)
    assert ids == [(1,)]
    with pytest.raises(ValueError, match="fill only"):
        SO2().irrep(3).decompose(max_frequency=2)


def check_with_bound(rep, bound):
    irreps, Q = rep.decompose(max_frequency=bound)
    g = rep.group.sample(5, generator=torch.Generator().manual_seed(9))
    assert (Q @ rep(g) @ Q.T - direct_sum(*irreps)(g)).abs().max() < TOL
    return [i.irrep_id for i in irreps], Q


def test_not_a_representation_is_rejected():
    # a table that is orthogonal but not a homomorphism cannot enter through from_matrices;
    # a raw Representation with a wrong function is caught by the character test
    bad = Representation(C(3), 2, lambda g: torch.eye(2, dtype=F64).expand(g.shape + (2, 2)) * 0.5)
    with pytest.raises(ValueError, match="not an integer|homomorphism"):
        bad.decompose()
    wrong = Representation(SO2(), 2, lambda g: torch.stack([g[..., 0], g[..., 1] * 2], -1))
    with pytest.raises(ValueError):
        wrong.decompose(max_frequency=3)


@pytest.mark.slow
def test_large_regular_d24():
    ids, _ = check(D(24).regular_representation())
    assert len(ids) == 2 + 2 + 2 * 11


@pytest.mark.parametrize("seed", [0, 18, 19, 20, 45])  # 18-20, 45: all-proper or all-improper draws
def test_parity_is_always_resolved(seed):
    """O(2)/O(3): the random test elements must include reflections whatever the seed."""
    irreps, Q = (O2().irrep(1, 0) + O2().irrep(0, 0)).decompose(seed=seed)
    assert [i.irrep_id for i in irreps] == [(0, 0), (1, 0)] 
    assert (Q.abs() - torch.eye(2, dtype=F64).flip(0)).abs().max() < TOL
    irreps, _ = (O3().irrep(0, 1) + O3().irrep(0, -1) + O3().irrep(1, 1)).decompose(seed=seed)
    assert [i.irrep_id for i in irreps] == [(0, -1), (0, 1), (1, 1)]
