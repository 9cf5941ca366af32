"""Representation algebra: direct sum, tensor product, change of basis, user matrices, restriction."""
import math

import pytest
import torch

from equiscale.groups import (C, D, O2, O3, SO2, SO3, Representation, direct_sum, embedding,
                              tensor_product)

F64 = torch.float64


def rot(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=F64)


REFLECT = torch.diag(torch.tensor([1.0, -1.0], dtype=F64))


def random_orthogonal(n: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))


def assert_homomorphism(rep, a, b, tol=1e-12):
    G = rep.group
    assert (rep(G.compose(a, b)) - rep(a) @ rep(b)).abs().max() < tol


def test_direct_sum_blocks_and_plus():
    G = D(4)
    a, b = G.irrep(1, 1), G.irrep(1, 0)
    s = a + b + a
    assert s.dim == 5 and s.group == G
    e = G.elements()
    m = s(e)
    assert torch.equal(m[:, :2, :2], a(e)) and torch.equal(m[:, 2:3, 2:3], b(e))
    assert torch.equal(m[:, 3:, 3:], a(e)) and m[:, :2, 2:].abs().max() == 0
    assert torch.equal(direct_sum(a, b, a)(e), m)
    assert_homomorphism(s, e[:, None], e[None, :])


def test_tensor_product_is_kron():
    G = SO2()
    a, b = G.irrep(2), G.irrep(3) + G.irrep(0)
    t = tensor_product(a, b)
    g = G.sample(7, generator=torch.Generator().manual_seed(0))
    for i in range(7):
        assert (t(g[i]) - torch.kron(a(g[i]), b(g[i]))).abs().max() == 0
    assert t.dim == 6 and t.max_frequency == 5
    assert_homomorphism(t, g[:, None], g[None, :])


def test_max_frequency_tracking():
    assert (SO3().irrep(2) + SO3().irrep(1)).max_frequency == 2
    assert tensor_product(O2().irrep(1, 2), O2().irrep(1, 3)).max_frequency == 5
    user = Representation(SO2(), 2, lambda g: g)
    assert user.max_frequency is None and (user + SO2().irrep(1)).max_frequency is None
    assert C(4).regular_representation().max_frequency is None


def test_change_basis():
    G = D(5)
    reg = G.regular_representation()
    Q = random_orthogonal(10, 1)
    rep = reg.change_basis(Q)
    e = G.elements()
    assert (rep(e) - Q @ reg(e) @ Q.T).abs().max() < 1e-15
    assert (rep.character(e) - reg.character(e)).abs().max() < 1e-13
    assert_homomorphism(rep, e[:, None], e[None, :])
    with pytest.raises(ValueError, match="orthogonal"):
        reg.change_basis(2 * torch.eye(10, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        reg.change_basis(torch.eye(3, dtype=F64))


def test_from_generators_rebuilds_the_standard_representation():
    G = D(4)
    std = G.standard_representation()
    e = G.elements()
    by_element = Representation.from_generators(G, {1: rot(math.pi / 2), 4: REFLECT})
    by_position = Representation.from_generators(G, [rot(math.pi / 2), REFLECT])
    # another generating set: the reflections s and r s
    two_reflections = Representation.from_generators(G, {4: REFLECT, 5: rot(math.pi / 2) @ REFLECT})
    for rep in (by_element, by_position, two_reflections):
        assert rep.dim == 2 and (rep(e) - std(e)).abs().max() < 1e-15
    full = Representation.from_matrices(G, std(e))
    assert torch.equal(full(e), std(e)) and full.matrices().shape == (8, 2, 2)


def test_from_generators_rejects_bad_matrices():
    with pytest.raises(ValueError, match="homomorphism"):
        Representation.from_generators(C(4), {1: rot(2 * math.pi / 3)})  # r^4 != 1
    with pytest.raises(ValueError, match="homomorphism"):
        Representation.from_generators(D(3), {1: rot(2 * math.pi / 3), 3: torch.eye(2, dtype=F64) * -1})
    with pytest.raises(ValueError, match="do not generate"):
        Representation.from_generators(D(4), {2: -torch.eye(2, dtype=F64), 4: REFLECT})
    with pytest.raises(ValueError, match="orthogonal"):
        Representation.from_generators(C(2), {1: torch.tensor([[1.0, 1.0], [0.0, -1.0]])})
    with pytest.raises(ValueError, match="square"):
        Representation.from_generators(D(3), {1: rot(1.0), 3: torch.eye(3)})
    with pytest.raises(ValueError, match="generators"):
        Representation.from_generators(D(3), [rot(2 * math.pi / 3)])
    with pytest.raises(ValueError, match="out of range"):
        Representation.from_generators(C(3), {3: rot(2 * math.pi / 3)})
    with pytest.raises(ValueError, match="finite"):
        Representation.from_generators(SO2(), {1: rot(1.0)})
    e = C(4).elements()
    with pytest.raises(ValueError, match="homomorphism"):
        Representation.from_matrices(C(4), C(4).irrep(1)(e)[[0, 2, 1, 3]])
    with pytest.raises(ValueError, match="shape"):
        Representation.from_matrices(C(4), C(4).irrep(1)(e)[:3])


def test_mixing_groups_is_an_error():
    with pytest.raises(ValueError, match="different groups"):
        C(4).irrep(1) + D(4).irrep(1, 1)
    with pytest.raises(ValueError, match="different groups"):
        tensor_product(SO3().irrep(1), O3().irrep(1, -1))
    with pytest.raises(ValueError, match="at least one"):
        direct_sum()
    with pytest.raises(ValueError, match="dim"):
        Representation(C(3), 0, lambda g: g)


def test_restrict_so2_to_cn_and_o2_to_dn():
    k = torch.arange(6)
    for freq in range(6):
        res = SO2().irrep(freq).restrict(C(6))
        want = torch.stack([rot(2 * math.pi * freq * i / 6) for i in range(6)]) if freq else torch.ones(6, 1, 1, dtype=F64)
        assert res.group == C(6) and (res(k) - want).abs().max() < 1e-14
    e = D(3).elements()
    res = O2().irrep(1, 2).restrict(D(3))
    want = torch.stack([rot(4 * math.pi * (i % 3) / 3) @ (REFLECT if i >= 3 else torch.eye(2, dtype=F64))
                        for i in range(6)])
    assert (res(e) - want).abs().max() < 1e-14
    assert_homomorphism(res, e[:, None], e[None, :])
    # the standard representations agree through the embedding
    assert (O2().standard_representation().restrict(D(5))(D(5).elements())
            - D(5).standard_representation()(D(5).elements())).abs().max() < 1e-15
    assert (O2().standard_representation().restrict(C(5))(C(5).elements())
            - C(5).standard_representation()(C(5).elements())).abs().max() < 1e-15


def test_restrict_between_finite_groups():
    # through the standard (plane) action: embedded elements act by the same matrices
    for big, small in [(C(12), C(4)), (D(12), C(3)), (D(12), D(4)), (D(6), D(6)), (D(4), C(4))]:
        e = small.elements()
        res = big.standard_representation().restrict(small)
        assert res.group == small
        assert (res(e) - small.standard_representation()(e)).abs().max() < 1e-14, (big, small)
        emb = embedding(big, small)
        ab = small.compose(e[:, None], e[None, :])
        assert torch.equal(emb(ab), big.compose(emb(e)[:, None], emb(e)[None, :]))


def test_restrict_o3_to_so3_and_o2_to_so2():
    g = SO3().sample(5)
    assert torch.equal(O3().irrep(1, 1).restrict(SO3())(g), g)
    res = O2().irrep(1, 3).restrict(SO2())
    assert res.max_frequency == 3
    h = SO2().sample(4)
    assert (res(h) - SO2().irrep(3)(h)).abs().max() < 1e-14


def test_restrict_bad_subgroups():
    with pytest.raises(ValueError, match="divide"):
        C(6).regular_representation().restrict(C(4))
    with pytest.raises(ValueError, match="not supported"):
        SO2().irrep(1).restrict(D(4))  # reflections are not in SO(2)
    with pytest.raises(ValueError, match="not supported"):
        C(4).irrep(1).restrict(D(2))
    with pytest.raises(ValueError, match="not supported"):
        SO3().irrep(1).restrict(O3())


def test_call_on_single_elements():
    assert C(4).irrep(1)(1).shape == (2, 2)
    assert D(3).regular_representation()(torch.tensor([[1, 2]])).shape == (1, 2, 6, 6)
    assert (C(4).irrep(1)(1) - rot(math.pi / 2)).abs().max() < 1e-16
    assert D(3).regular_representation().character(0).item() == 6
