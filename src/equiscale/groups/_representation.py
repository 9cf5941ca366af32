"""``Representation``: one class for every representation of every group, and its algebra.

A representation is a group, a dimension and a function from group elements to orthogonal
matrices ``(..., dim, dim)``.  Direct sums, tensor products, changes of basis and restrictions
build new representations by composing these functions; nothing is cached.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import Tensor

from equiscale.groups._common import batched_block_diag, batched_kron, check_orthogonal

if TYPE_CHECKING:  # pragma: no cover
    from equiscale.groups._compact import O2Group, O3Group, SO2Group, SO3Group
    from equiscale.groups._finite import CyclicGroup, DihedralGroup

    Group = Union[CyclicGroup, DihedralGroup, SO2Group, O2Group, SO3Group, O3Group]
else:
    Group = Any

__all__ = ["Representation", "direct_sum", "tensor_product"]


class Representation:
    """A real orthogonal representation ``rho`` of ``group`` on ``R^dim``.

    ``rep(g)`` returns ``(..., dim, dim)`` for elements ``g`` of shape ``(...)`` (finite
    groups) or ``(..., d, d)`` (compact groups).  Finite groups give float64; compact groups
    give the dtype of the element matrices (float64 by convention).

    Args:
        group: a group object (``C(n)``, ``D(n)``, ``SO2()``, ``O2()``, ``SO3()``, ``O3()``).
        dim: the dimension of the representation space.
        fn: maps *validated* elements (finite groups: int64 ``(...)``; compact groups: matrices
            ``(..., d, d)``) to matrices ``(..., dim, dim)``.  It must be a homomorphism into the
            orthogonal matrices; :meth:`from_generators` / :meth:`from_matrices` check this for
            finite groups.
        name: a label for printing.
        irrep_id: the id tuple if this is ``group.irrep(*irrep_id)``, else None.
        max_frequency: for compact groups, an upper bound on the frequency (SO(2)/O(2)) or degree
            (SO(3)/O(3)) of the irreps it contains (None if unknown); it is what lets
            :meth:`decompose` know its candidate irreps.  Ignored (None) for finite groups.
    """

    __slots__ = ("_group", "_dim", "_fn", "_name", "_irrep_id", "_max_frequency")

    def __init__(
        self,
        group: Group,
        dim: int,
        fn: Callable[[Tensor], Tensor],
        *,
        name: str | None = None,
        irrep_id: tuple[int, ...] | None = None,
        max_frequency: int | None = None,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"representation dim must be a positive int, got {dim!r}")
        if not callable(fn):
            raise ValueError("fn must be callable (elements -> matrices)")
        self._group = group
        self._dim = dim
        self._fn = fn
        self._name = name if name is not None else f"rep[{dim}] of {group.name}"
        self._irrep_id = None if irrep_id is None else tuple(irrep_id)
        if group.is_finite or max_frequency is None:
            self._max_frequency = None
        else:
            self._max_frequency = int(max_frequency)

    # --- attributes -------------------------------------------------------------------------
    @property
    def group(self) -> Group:
        """The group this represents."""
        return self._group

    @property
    def dim(self) -> int:
        """The dimension of the representation space."""
        return self._dim

    @property
    def name(self) -> str:
        """A label for printing."""
        return self._name

    @property
    def irrep_id(self) -> tuple[int, ...] | None:
        """``ids`` such that this is ``group.irrep(*ids)``; None if not constructed as an irrep."""
        return self._irrep_id

    @property
    def max_frequency(self) -> int | None:
        """Compact groups: bound on the frequencies/degrees inside (None: unknown or finite)."""
        return self._max_frequency

    def __repr__(self) -> str:
        return f"Representation({self._name}, dim={self._dim})"

    # --- evaluation ---------------------------------------------------------------------------
    def __call__(self, g: Any) -> Tensor:
        """Matrices ``rho(g)`` of shape ``(..., dim, dim)`` for a batch of elements ``g``."""
        g = self._group.validate(g)
        out = self._fn(g)
        if out.shape[-2:] != (self._dim, self._dim):
            raise ValueError(
                f"{self._name}: fn returned shape {tuple(out.shape)}, expected (..., {self._dim}, {self._dim})"
            )
        return out

    def character(self, g: Any) -> Tensor:
        """The character ``trace(rho(g))``, shape ``(...)``."""
        return self(g).diagonal(dim1=-2, dim2=-1).sum(-1)

    def matrices(self) -> Tensor:
        """Finite groups only: ``rho`` of every element, ``(order, dim, dim)`` in ``elements()`` order."""
        if not self._group.is_finite:
            raise ValueError(f"matrices() needs a finite group, {self._group.name} is not finite")
        return self(self._group.elements())

    # --- construction from user matrices (finite groups) ---------------------------------------
    @classmethod
    def from_matrices(cls, group: Group, matrices: Tensor, *, name: str | None = None,
                      atol: float = 1e-8) -> "Representation":
        """The representation of a finite ``group`` given by a full table ``(order, dim, dim)``.

        ``matrices[i]`` is the matrix of element ``i`` (see ``group.elements()``).  Raises
        ValueError unless the table is an orthogonal homomorphism (checked to ``atol``).
        """
        if not group.is_finite:
            raise ValueError(f"from_matrices needs a finite group, {group.name} is not finite")
        table = torch.as_tensor(matrices).to("cpu", torch.float64)
        n = group.order
        if table.ndim != 3 or table.shape[0] != n or table.shape[1] != table.shape[2]:
            raise ValueError(f"matrices must have shape ({n}, dim, dim) for {group.name}, got {tuple(table.shape)}")
        table = table.clone()
        _check_table(group, table, atol)
        return cls(group, table.shape[-1], lambda g: table.to(g.device)[g], name=name or f"rep[{table.shape[-1]}] of {group.name}")

    @classmethod
    def from_generators(cls, group: Group, generators: Mapping[int, Tensor] | Sequence[Tensor], *,
                        name: str | None = None, atol: float = 1e-8) -> "Representation":
        """The representation of a finite ``group`` fixed by the matrices of a generating set.

        ``generators`` is either a mapping ``{element index: matrix (dim, dim)}`` whose elements
        generate the group, or a sequence of matrices aligned with ``group.generators``.  The
        other matrices follow by multiplication; raises ValueError if the elements do not
        generate the group, or the matrices are not orthogonal or break the group's relations.
        """
        if not group.is_finite:
            raise ValueError(f"from_generators needs a finite group, {group.name} is not finite")
        if isinstance(generators, Mapping):
            items = [(int(group.validate(k)), v) for k, v in generators.items()]
        else:
            gens = [int(x) for x in group.generators]
            if len(generators) != len(gens):
                raise ValueError(f"{group.name} has {len(gens)} generators {gens}, got {len(generators)} matrices")
            items = list(zip(gens, generators))
        mats = {k: torch.as_tensor(v).to("cpu", torch.float64) for k, v in items}
        if not mats:
            if group.order != 1:
                raise ValueError(f"no generators given for {group.name}")
            raise ValueError("the trivial group needs one matrix, e.g. {0: eye(dim)}, to fix dim")
        dims = {tuple(m.shape) for m in mats.values()}
        if len(dims) != 1 or len(next(iter(dims))) != 2 or next(iter(dims))[0] != next(iter(dims))[1]:
            raise ValueError(f"generator matrices must all be square of one size, got shapes {sorted(dims)}")
        dim = next(iter(dims))[0]
        cayley = group.cayley_table
        table: list[Tensor | None] = [None] * group.order
        table[int(group.identity)] = torch.eye(dim, dtype=torch.float64)
        frontier = [int(group.identity)]
        while frontier:  # breadth-first closure: M[g h] = M[g] M[h]
            new = []
            for h in frontier:
                for g, mg in mats.items():
                    gh = int(cayley[g, h])
                    if table[gh] is None:
                        table[gh] = mg @ table[h]
                        new.append(gh)
            frontier = new
        missing = [i for i, m in enumerate(table) if m is None]
        if missing:
            raise ValueError(f"elements {sorted(mats)} do not generate {group.name} (never reached {missing[:5]})")
        full = torch.stack(table)  # type: ignore[arg-type]
        _check_table(group, full, atol)
        return cls(group, dim, lambda g: full.to(g.device)[g], name=name or f"rep[{dim}] of {group.name}")

    # --- algebra ------------------------------------------------------------------------------
    def __add__(self, other: "Representation") -> "Representation":
        return direct_sum(self, other)

    def change_basis(self, Q: Tensor) -> "Representation":
        """The representation ``g -> Q rho(g) Q^T`` for an orthogonal ``Q`` ``(dim, dim)``."""
        Q = torch.as_tensor(Q)
        if Q.shape != (self._dim, self._dim):
            raise ValueError(f"change_basis: Q must have shape ({self._dim}, {self._dim}), got {tuple(Q.shape)}")
        if not Q.dtype.is_floating_point:
            Q = Q.to(torch.float64)
        Q = Q.clone()
        check_orthogonal(Q, "change_basis: Q", atol=1e-8)
        fn = self._fn

        def changed(g: Tensor) -> Tensor:
            m = fn(g)
            q = Q.to(dtype=m.dtype, device=m.device)
            return q @ m @ q.T

        return Representation(self._group, self._dim, changed, name=f"Q {self._name} Q^T",
                              max_frequency=self._max_frequency)

    def restrict(self, subgroup: Group) -> "Representation":
        """This representation restricted to ``subgroup`` (see ``equiscale.groups.embedding``)."""
        from equiscale.groups._restrict import restrict

        return restrict(self, subgroup)

    def decompose(self, max_frequency: int | None = None, seed: int = 0
                  ) -> tuple[list["Representation"], Tensor]:
        """Split into irreps: returns ``(irreps, Q)`` with ``Q rho(g) Q^T = blockdiag(irreps(g))``.

        See :func:`equiscale.groups.decompose` for the method, the order and the arguments.
        """
        from equiscale.groups._decompose import decompose

        return decompose(self, max_frequency=max_frequency, seed=seed)


def _check_table(group: Group, table: Tensor, atol: float) -> None:
    """Raise ValueError unless ``table`` (order, d, d) is an orthogonal homomorphism of ``group``."""
    if not bool(torch.isfinite(table).all()):
        raise ValueError("representation matrices contain inf or nan")
    check_orthogonal(table, "representation matrices", atol=atol)
    eye = torch.eye(table.shape[-1], dtype=table.dtype)
    err = (table[int(group.identity)] - eye).abs().max().item()
    if err > atol:
        raise ValueError(f"the identity must map to the identity matrix (error {err:.3g})")
    cayley = group.cayley_table
    for g in [int(x) for x in group.generators]:
        err = (table[cayley[g]] - table[g] @ table).abs().max().item()
        if err > atol:
            raise ValueError(f"matrices are not a homomorphism of {group.name}: "
                             f"rho(g h) != rho(g) rho(h) for generator g={g} (error {err:.3g})")


def _same_group(reps: Sequence[Representation], what: str) -> Group:
    if not reps:
        raise ValueError(f"{what} needs at least one representation")
    for r in reps:
        if not isinstance(r, Representation):
            raise ValueError(f"{what}: expected Representation objects, got {type(r).__name__}")
    group = reps[0].group
    for r in reps[1:]:
        if r.group != group:
            raise ValueError(f"{what}: representations of different groups ({group.name} and {r.group.name})")
    return group


def direct_sum(*reps: Representation) -> Representation:
    """The direct sum ``rho_1 (+) rho_2 (+) ...``: block-diagonal matrices, blocks in the order given."""
    group = _same_group(reps, "direct_sum")
    fns = [r._fn for r in reps]
    dim = sum(r.dim for r in reps)
    freqs = [r.max_frequency for r in reps]
    max_f = None if any(f is None for f in freqs) else max(freqs)  # type: ignore[type-var]

    def summed(g: Tensor) -> Tensor:
        return batched_block_diag([fn(g) for fn in fns])

    name = " + ".join(r.name if " " not in r.name else f"({r.name})" for r in reps)
    return Representation(group, dim, summed, name=name, max_frequency=max_f)


def tensor_product(a: Representation, b: Representation) -> Representation:
    """The tensor product ``rho_a (x) rho_b`` with basis ``e_i (x) f_k`` at index ``i * b.dim + k``."""
    group = _same_group([a, b], "tensor_product")
    fa, fb = a._fn, b._fn
    max_f = None if a.max_frequency is None or b.max_frequency is None else a.max_frequency + b.max_frequency

    def product(g: Tensor) -> Tensor:
        return batched_kron(fa(g), fb(g))

    return Representation(group, a.dim * b.dim, product, name=f"({a.name}) x ({b.name})", max_frequency=max_f)
