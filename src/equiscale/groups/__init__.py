"""Symmetry groups and their real orthogonal representations (pure math, torch, float64).

Groups (small immutable objects, equal and hashable by value, ``C(4) == C(4)``)::

    C(n), D(n)            finite planar groups; elements are int64 indices (...)
    SO2(), O2()           planar rotations (and reflections); elements (..., 2, 2) float64
    SO3(), O3()           rotations (and improper rotations); elements (..., 3, 3) float64

One interface for all: ``identity``, ``compose(a, b)`` ("a after b", matrix ``a @ b``),
``inverse(a)``, ``sample(n, generator=None)`` (Haar / uniform), ``validate(g)``, ``name``,
``is_finite``; finite groups also ``order``, ``elements()``, ``generators``, ``cayley_table``.
``C(n)``: index ``k`` rotates by ``2 pi k / n``.  ``D(n)``: indices ``0..n-1`` are ``r^k``,
``n..2n-1`` are ``r^k s`` with ``s: (x, y) -> (x, -y)`` applied first.

Representations (one class, :class:`Representation`)::

    rep = group.standard_representation()   # action on R^2 / R^3
    rep = group.regular_representation()    # finite groups, permutations in elements() order
    rep = group.irrep(*ids)                 # irreps; group.irreps() / group.irreps(max_frequency)
    rep(g)                                  # (..., dim, dim) for a batch of elements
    rep.dim, rep.name, rep.irrep_id, rep.character(g)
    rep + other, direct_sum(*reps), tensor_product(a, b), rep.change_basis(Q)
    rep.restrict(subgroup)                  # SO2 -> C(n), O2 -> D(n), O3 -> SO3, D(m) -> C(n), ...
    irreps, Q = rep.decompose()             # Q rho(g) Q^T = blockdiag([i(g) for i in irreps])
    Representation.from_generators(D(4), {1: R, 4: S})   # user matrices of a finite group

Irrep ids: ``C(n).irrep(k)``, ``k = 0..n//2``; ``D(n).irrep(j, k)`` (reflection flag ``j``,
frequency ``k``); ``SO2().irrep(k)``; ``O2().irrep(j, k)``; ``SO3().irrep(l)`` (e3nn's real
Wigner-D, ``D^1(R) = R``); ``O3().irrep(l, p)`` (e3nn's ``Irrep(l, p).D_from_matrix``).  See
the docstrings of ``_finite`` and ``_compact`` for the matrices.
"""
from equiscale.groups._compact import O2, O3, SO2, SO3, O2Group, O3Group, SO2Group, SO3Group
from equiscale.groups._decompose import decompose, intertwiners
from equiscale.groups._finite import C, CyclicGroup, D, DihedralGroup
from equiscale.groups._representation import Representation, direct_sum, tensor_product
from equiscale.groups._restrict import embedding, restrict

__all__ = [
    "C",
    "D",
    "SO2",
    "O2",
    "SO3",
    "O3",
    "CyclicGroup",
    "DihedralGroup",
    "SO2Group",
    "O2Group",
    "SO3Group",
    "O3Group",
    "Representation",
    "direct_sum",
    "tensor_product",
    "decompose",
    "intertwiners",
    "restrict",
    "embedding",
]
