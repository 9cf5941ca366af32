"""Angular harmonics on the circle and the sphere, and the representation each one carries.

The angular part of every steerable kernel is a harmonic ``Y_J`` of the direction ``x / |x|``:

* 2D, ``J = 0``: ``Y_0 = 1``; ``J > 0``: ``Y_J = (cos J theta, sin J theta)`` with ``theta`` the
  angle of ``(x, y)``. Under ``g`` in O(2), ``Y_J(g x) = rho_J(g) Y_J(x)`` with ``rho_J`` the
  O(2) irrep ``(1, J)`` (``(0, 0)`` for ``J = 0``): ``R(J phi)`` for a rotation by ``phi`` and
  ``diag(1, -1)`` for the reflection ``(x, y) -> (x, -y)``.
* 3D: ``Y_J`` is the real spherical harmonic of degree ``J`` of :mod:`equiscale.o3` scaled to
  unit norm (``normalization="norm"``); ``Y_J(g x) = D^J(g) Y_J(x)`` with ``D^J`` the O(3) irrep
  ``(J, (-1)^J)``.

For a subgroup (``C(n)``, ``D(n)``, ``SO(2)``, ``SO(3)``) the harmonic carries the restriction of
that representation. At ``x = 0`` the harmonics of ``J > 0`` are set to zero: the origin is fixed
by every rotation, and only ``J = 0`` kernels can be non-zero there.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from equiscale.groups import O2, O3, CyclicGroup, DihedralGroup, O2Group, O3Group, Representation, SO2Group, SO3Group

__all__ = ["space_dimension", "harmonic_representation", "harmonic_dim", "evaluate_harmonics"]

_PLANAR = (CyclicGroup, DihedralGroup, SO2Group, O2Group)
_SPATIAL = (SO3Group, O3Group)


def space_dimension(group: Any) -> int:
    """2 for the planar groups (C(n), D(n), SO(2), O(2)), 3 for SO(3), O(3); ValueError otherwise."""
    if isinstance(group, _PLANAR):
        return 2
    if isinstance(group, _SPATIAL):
        return 3
    raise ValueError(f"steerable kernels need a group acting on R^2 (C(n), D(n), SO2(), O2()) or R^3 "
                     f"(SO3(), O3()) from equiscale.groups, got {group!r}")


def harmonic_dim(group: Any, J: int) -> int:
    """Number of components of ``Y_J``: 1 or 2 in 2D, ``2 J + 1`` in 3D."""
    if space_dimension(group) == 2:
        return 1 if J == 0 else 2
    return 2 * J + 1


def harmonic_representation(group: Any, J: int) -> Representation:
    """The representation of ``group`` carried by ``Y_J`` (see the module docstring)."""
    if space_dimension(group) == 2:
        ambient = O2().irrep(0, 0) if J == 0 else O2().irrep(1, J)
    else:
        ambient = O3().irrep(J, (-1) ** J)
    return ambient.restrict(group)


def evaluate_harmonics(group: Any, J: int, points: Tensor) -> Tensor:
    """``Y_J`` at ``points`` ``(n, d)`` (any non-zero length; zero rows give zeros for ``J > 0``): ``(n, dim)``."""
    d = space_dimension(group)
    r = points.norm(dim=-1)
    at_origin = r < 1e-9
    if J == 0:
        return torch.ones(points.shape[0], 1, dtype=points.dtype, device=points.device)
    if d == 2:
        theta = torch.atan2(points[:, 1], points[:, 0])
        values = torch.stack([torch.cos(J * theta), torch.sin(J * theta)], -1)
    else:
        from equiscale.o3 import spherical_harmonics

        safe = torch.where(at_origin[:, None], torch.ones_like(points), points)
        values = spherical_harmonics(J, safe, normalize=True, normalization="norm")
    return torch.where(at_origin[:, None], torch.zeros_like(values), values)
