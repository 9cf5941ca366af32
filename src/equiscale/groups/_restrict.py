"""Restriction of representations to subgroups, through explicit embeddings.

Supported ``subgroup <= group`` pairs (the embedding maps subgroup elements to group elements):

* any group in itself (identity);
* ``C(n)`` in SO(2) or O(2): ``k -> R(2 pi k / n)``;
* ``D(n)`` in O(2): ``r^k -> R(2 pi k / n)``, ``r^k s -> R(2 pi k / n) diag(1, -1)``;
* SO(2) in O(2), SO(3) in O(3): the inclusion of matrices;
* ``C(n)`` in ``C(m)`` or ``D(m)``, and ``D(n)`` in ``D(m)``, for ``n | m``: ``r -> r^(m/n)``,
  ``s -> s``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from equiscale.groups._common import rotation_2d
from equiscale.groups._compact import O2Group, O3Group, SO2Group, SO3Group
from equiscale.groups._finite import CyclicGroup, DihedralGroup

if TYPE_CHECKING:  # pragma: no cover
    from equiscale.groups._representation import Representation

__all__ = ["embedding", "restrict"]


def _finite_to_planar(sub: Any) -> Callable[[Tensor], Tensor]:
    n = sub.n
    reflections = isinstance(sub, DihedralGroup)

    def embed(h: Tensor) -> Tensor:
        r = rotation_2d((h % n).to(torch.float64) * (2 * math.pi / n))
        if not reflections:
            return r
        flip = (h >= n)[..., None, None]
        return torch.where(flip, torch.stack([r[..., 0], -r[..., 1]], -1), r)

    return embed


def _finite_to_finite(group: Any, sub: Any) -> Callable[[Tensor], Tensor]:
    step = group.n // sub.n
    n, m = sub.n, group.n

    def embed(h: Tensor) -> Tensor:
        if isinstance(sub, CyclicGroup):
            return h * step
        return (h % n) * step + m * (h // n)

    return embed


def embedding(group: Any, subgroup: Any) -> Callable[[Tensor], Tensor]:
    """The map from validated ``subgroup`` elements to ``group`` elements (see module docstring).

    Raises ValueError if ``subgroup`` is not one of the supported subgroups of ``group``.
    """
    if subgroup == group:
        return lambda h: h
    if isinstance(group, (SO2Group, O2Group)) and isinstance(subgroup, CyclicGroup):
        return _finite_to_planar(subgroup)
    if isinstance(group, O2Group) and isinstance(subgroup, DihedralGroup):
        return _finite_to_planar(subgroup)
    if (isinstance(group, O2Group) and isinstance(subgroup, SO2Group)) or (
        isinstance(group, O3Group) and isinstance(subgroup, SO3Group)
    ):
        return lambda h: h
    finite_pair = (
        isinstance(group, (CyclicGroup, DihedralGroup)) and isinstance(subgroup, CyclicGroup)
    ) or (isinstance(group, DihedralGroup) and isinstance(subgroup, DihedralGroup))
    if finite_pair:
        if group.n % subgroup.n:
            raise ValueError(f"{subgroup.name} is not a subgroup of {group.name}: {subgroup.n} does not divide {group.n}")
        return _finite_to_finite(group, subgroup)
    raise ValueError(f"restriction from {group.name} to {getattr(subgroup, 'name', repr(subgroup))} "
                     "is not supported (see equiscale.groups.embedding for the supported pairs)")


def restrict(rep: "Representation", subgroup: Any) -> "Representation":
    """``rep`` composed with the embedding of ``subgroup`` into ``rep.group``."""
    from equiscale.groups._representation import Representation

    if subgroup == rep.group:
        return rep
    embed = embedding(rep.group, subgroup)
    fn = rep._fn

    def restricted(h: Tensor) -> Tensor:
        return fn(embed(h))

    return Representation(subgroup, rep.dim, restricted, name=f"{rep.name} | {subgroup.name}",
                          max_frequency=rep.max_frequency)
