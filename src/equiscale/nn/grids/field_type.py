"""``FieldType``: what each channel block of a steerable feature map is.

A steerable feature map is a plain tensor ``(B, field_type.size, H, W)`` (2D) or
``(B, field_type.size, D, H, W)`` (3D) whose channels are the fields of ``field_type`` one after
the other: field ``i`` occupies ``field_type.slices[i]`` and transforms by
``field_type.representations[i]``. A group element ``g`` acts as
``(g.F)(p) = rho(g) F(g^-1 p)`` with ``rho`` the direct sum of the fields' representations,
i.e. ``equiscale.testing.GridField(field_type.representation, axis=1, ndim=d)``.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any, Iterable

import torch

from equiscale.groups import Representation, direct_sum, intertwiners

__all__ = ["FieldType", "same_representation", "invariant_vectors", "check_same_type", "as_field_type"]


def same_representation(a: Representation, b: Representation) -> bool:
    """True if ``a`` and ``b`` have the same matrices (on every element of a finite group, else on samples)."""
    if a is b:
        return True
    if a.group != b.group or a.dim != b.dim:
        return False
    if a.irrep_id is not None and b.irrep_id is not None:
        return a.irrep_id == b.irrep_id
    group = a.group
    g = group.elements() if group.is_finite else group.sample(6, generator=torch.Generator().manual_seed(7))
    return bool(torch.allclose(a(g), b(g), atol=1e-9))


def invariant_vectors(rep: Representation) -> torch.Tensor:
    """Orthonormal columns spanning the vectors that ``rep`` fixes, float64 ``(rep.dim, count)``.

    These are the directions where a bias or a mean may live without breaking equivariance (e.g. the
    constant vector of a regular representation, none for a vector field). Finite groups: the
    eigenvectors of the exact projector ``mean_g rho(g)``; compact groups: the common fixed vectors
    of a few generic elements. Each column's first non-zero entry is positive, so the basis is
    reproducible.
    """
    from equiscale.kernels._intertwiners import constraint_elements

    if rep.group.is_finite:
        projector = rep(rep.group.elements()).mean(0)
        values, vectors = torch.linalg.eigh((projector + projector.T) / 2)
        basis = vectors[:, values > 0.5]
    else:
        matrices = rep(constraint_elements(rep.group))
        trivial = torch.ones(matrices.shape[0], 1, 1, dtype=matrices.dtype)
        basis = intertwiners(matrices, trivial).reshape(-1, rep.dim).T  # rho(g) v = v
    for column in basis.T:  # fix the sign: first clearly non-zero entry positive
        lead = column[column.abs() > 1e-9][0]
        column.mul_(torch.sign(lead))
    return basis.contiguous()


class FieldType:
    """An ordered list of fields, each a :class:`~equiscale.groups.Representation` of one group.

    ``FieldType(C(8), [C(8).regular_representation()] * 16)``: 16 regular fields (128 channels).
    ``FieldType(SO2(), [SO2().irrep(0)] * 4 + [SO2().irrep(1)] * 2)``: 4 scalars and 2 vectors.
    """

    def __init__(self, group: Any, representations: Iterable[Representation]) -> None:
        reps = tuple(representations)
        if not reps:
            raise ValueError("FieldType needs at least one field")
        for i, rep in enumerate(reps):
            if not isinstance(rep, Representation):
                raise ValueError(f"FieldType: field {i} must be an equiscale.groups.Representation, got {rep!r}")
            if rep.group != group:
                raise ValueError(f"FieldType: field {i} ({rep.name}) is a representation of {rep.group.name}, "
                                 f"the field type's group is {group.name}")
        self.group = group
        self.representations = reps

    @property
    def size(self) -> int:
        """Number of channels: the sum of the fields' dimensions."""
        return sum(rep.dim for rep in self.representations)

    def __len__(self) -> int:
        return len(self.representations)

    @cached_property
    def slices(self) -> tuple[slice, ...]:
        """The channel range of each field."""
        out, start = [], 0
        for rep in self.representations:
            out.append(slice(start, start + rep.dim))
            start += rep.dim
        return tuple(out)

    @cached_property
    def representation(self) -> Representation:
        """The direct sum of the fields' representations (acts on all ``size`` channels)."""
        return self.representations[0] if len(self) == 1 else direct_sum(*self.representations)

    def __add__(self, other: "FieldType") -> "FieldType":
        if not isinstance(other, FieldType):
            return NotImplemented
        if other.group != self.group:
            raise ValueError(f"cannot concatenate field types of {self.group.name} and {other.group.name}")
        return FieldType(self.group, self.representations + other.representations)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldType):
            return NotImplemented
        return (self.group == other.group and len(self) == len(other)
                and all(same_representation(a, b) for a, b in zip(self.representations, other.representations)))

    __hash__ = None  # equality compares matrices, which has no matching hash

    def __repr__(self) -> str:
        parts: list[str] = []
        for rep in self.representations:  # run-length encode consecutive equal fields
            if parts and same_representation(parts[-1][1], rep):
                parts[-1] = (parts[-1][0] + 1, rep)
            else:
                parts.append((1, rep))
        body = " + ".join(f"{n}x[{rep.name}]" for n, rep in parts)
        return f"FieldType({self.group.name}: {body}; size {self.size})"

    def restrict(self, subgroup: Any) -> "FieldType":
        """The same fields seen by a subgroup, e.g. ``SO2() -> C(4)`` to test on grid-exact rotations."""
        return FieldType(subgroup, [rep.restrict(subgroup) for rep in self.representations])

    def invariant_basis(self) -> torch.Tensor:
        """Block-diagonal :func:`invariant_vectors` of all fields, float64 ``(size, count)``."""
        distinct, ids = self.type_ids()
        per_type = [invariant_vectors(rep) for rep in distinct]
        columns = []
        for type_id, where in zip(ids, self.slices):
            vectors = per_type[type_id]
            block = torch.zeros(self.size, vectors.shape[1], dtype=torch.float64)
            block[where] = vectors
            columns.append(block)
        return torch.cat(columns, 1)

    def type_ids(self) -> tuple[list[Representation], list[int]]:
        """The distinct representations (:func:`same_representation`) and, for each field, the index of its one."""
        distinct: list[Representation] = []
        ids: list[int] = []
        for rep in self.representations:
            for k, seen in enumerate(distinct):
                if same_representation(seen, rep):
                    ids.append(k)
                    break
            else:
                distinct.append(rep)
                ids.append(len(distinct) - 1)
        return distinct, ids


def check_same_type(expected: FieldType, got: FieldType, where: str) -> None:
    """ValueError naming both field types unless they are equal."""
    if expected != got:
        raise ValueError(f"{where}: field type mismatch: {got!r} does not match the expected {expected!r}")


def as_field_type(value: Any, what: str) -> FieldType:
    """``value`` if it is a FieldType; ValueError naming ``what`` otherwise."""
    if not isinstance(value, FieldType):
        raise ValueError(f"{what} must be an equiscale.nn.FieldType, got {value!r}")
    return value

