"""The compact matrix groups ``SO2()``, ``O2()``, ``SO3()``, ``O3()``.

Elements are their standard matrices, float64 by convention: ``(..., 2, 2)`` for SO(2)/O(2),
``(..., 3, 3)`` for SO(3)/O(3); ``compose(a, b) = a @ b`` ("a after b").  Irrep ids:

* ``SO2().irrep(k)``, ``k >= 0``: trivial for ``k = 0``, else ``R(theta) -> R(k theta)``
  (2d, complex type).
* ``O2().irrep(j, k)``: ``(0, 0)`` trivial, ``(1, 0)`` the determinant, ``(1, k)`` for
  ``k > 0``: ``R(theta) -> R(k theta)``, ``R(theta) s -> R(k theta) diag(1, -1)`` with
  ``s = diag(1, -1)`` the reflection across the x-axis.
* ``SO3().irrep(l)``: the Wigner-D matrix of degree ``l`` in e3nn's real basis, ``D^1(R) = R``.
* ``O3().irrep(l, p)``, ``p = +-1``: e3nn's ``Irrep(l, p).D_from_matrix(R)``, i.e.
  ``D^l(det(R) R) * p^[det(R) < 0]``.

Degrees ``l >= 2`` come from ``equiscale.o3`` (imported when first needed).
``irreps(max_frequency)`` lists irreps up to a frequency/degree in the canonical order of
decompositions: by frequency then ``j`` (SO(2), O(2)); by ``l`` (SO(3)); by ``(l, p)`` with
``p = -1`` first (O(3), the order of e3nn's ``Irreps.sort()``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from equiscale.groups._common import as_int, rotation_2d
from equiscale.groups._representation import Representation

__all__ = ["SO2Group", "O2Group", "SO3Group", "O3Group", "SO2", "O2", "SO3", "O3"]


def _sample_shape(n: int | tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(as_int(x, "sample size") for x in n) if isinstance(n, tuple) else (as_int(n, "sample size"),)
    if any(s < 0 for s in shape):
        raise ValueError(f"sample size must be >= 0, got {n!r}")
    return shape


def _angle(g: Tensor) -> Tensor:
    """The rotation angle theta of ``R(theta)`` or ``R(theta) diag(1, -1)``: (..., 2, 2) -> (...)."""
    return torch.atan2(g[..., 1, 0], g[..., 0, 0])


def _det_sign(g: Tensor) -> Tensor:
    """``sign(det g)`` for orthogonal matrices, exactly +-1 in g's dtype."""
    return torch.where(torch.linalg.det(g) < 0, -1.0, 1.0).to(g.dtype)


def _so3_irrep(l: int, R: Tensor) -> Tensor:
    """Wigner-D of degree ``l`` for rotations ``R`` (..., 3, 3), e3nn's real basis."""
    if l == 0:
        return torch.ones(R.shape[:-2] + (1, 1), dtype=R.dtype, device=R.device)
    if l == 1:
        return R.clone()
    from equiscale.o3 import Irrep  # lazy: o3 is a sibling package

    return Irrep(l, 1).D_from_matrix(R)


class _MatrixGroup:
    """Code shared by the compact matrix groups (one level, no further hierarchy)."""

    is_finite = False
    _d: int = 0
    _special: bool = False
    _label: str = ""
    _trivial_id: tuple[int, ...] = ()
    _standard_id: tuple[int, ...] = ()
    _ids_doc: str = ""
    _frequency_slot: int = 0  # position of the frequency / degree in an irrep id

    def __repr__(self) -> str:
        return self._label.replace("(", "").replace(")", "") + "()"

    @property
    def name(self) -> str:
        """``"SO(2)"``, ``"O(2)"``, ``"SO(3)"`` or ``"O(3)"``."""
        return self._label

    @property
    def identity(self) -> Tensor:
        """The identity matrix, float64."""
        return torch.eye(self._d, dtype=torch.float64)

    def validate(self, g: Any) -> Tensor:
        """Return ``g`` as a floating tensor ``(..., d, d)``; ValueError unless it is in the group.

        Orthogonality is checked to ``max(1e-6, 1000 eps)`` of the dtype, and ``det > 0`` for
        SO(2)/SO(3).  Integer input is converted to float64.
        """
        if not isinstance(g, Tensor):
            g = torch.as_tensor(g)
        if not g.dtype.is_floating_point:
            if g.dtype.is_complex or g.dtype == torch.bool:
                raise ValueError(f"elements of {self.name} are real matrices, got a {g.dtype} tensor")
            g = g.to(torch.float64)
        d = self._d
        if g.ndim < 2 or g.shape[-2:] != (d, d):
            raise ValueError(f"elements of {self.name} are ({d}, {d}) matrices (batched (..., {d}, {d})), "
                             f"got shape {tuple(g.shape)} (an element of another group?)")
        if g.numel():
            tol = max(1e-6, 1e3 * torch.finfo(g.dtype).eps)
            eye = torch.eye(d, dtype=g.dtype, device=g.device)
            err = (g.transpose(-1, -2) @ g - eye).abs().max().item()
            if not err <= tol:
                raise ValueError(f"not an element of {self.name}: matrix is not orthogonal (error {err:.3g})")
            if self._special and bool((torch.linalg.det(g) < 0).any()):
                raise ValueError(f"not an element of {self.name}: determinant -1 (a reflection)")
        return g

    def compose(self, a: Any, b: Any) -> Tensor:
        """The product ``a @ b`` ("a after b"), broadcast over batch shapes."""
        return self.validate(a) @ self.validate(b)

    def inverse(self, a: Any) -> Tensor:
        """The inverse ``a^T``."""
        return self.validate(a).transpose(-1, -2).clone()

    def irrep(self, *ids: Any) -> Representation:
        """The irrep with the given ids (see the module docstring); ValueError if none has them."""
        key = self._irrep_key(tuple(as_int(i, f"{self.name} irrep id") for i in ids))
        return Representation(self, self._irrep_dim(key), lambda g: self._irrep_matrices(key, g),
                              name=f"{self.name} irrep{key}", irrep_id=key, max_frequency=key[self._frequency_slot])

    def irreps(self, max_frequency: int) -> list[Representation]:
        """All irreps of frequency (SO(2), O(2)) or degree (SO(3), O(3)) ``<= max_frequency``."""
        m = as_int(max_frequency, "max_frequency")
        if m < 0:
            raise ValueError(f"max_frequency must be >= 0, got {m}")
        return [self.irrep(*key) for key in self._irrep_ids(m)]

    def trivial_representation(self) -> Representation:
        """The 1d trivial representation."""
        return self.irrep(*self._trivial_id)

    def standard_representation(self) -> Representation:
        """The defining action on R^d: the matrices themselves (an irrep, see ``irrep_id``)."""
        rep = self.irrep(*self._standard_id)
        return Representation(self, self._d, rep._fn, name=f"{self.name} standard",
                              irrep_id=self._standard_id, max_frequency=1)

    def _irrep_key(self, key: tuple[int, ...]) -> tuple[int, ...]:
        if not self._is_irrep_id(key):
            raise ValueError(f"{self.name} has no irrep {key}; {self._ids_doc}")
        return key


@dataclass(frozen=True, repr=False)
class SO2Group(_MatrixGroup):
    """The rotations of the plane, elements ``R(theta) = [[cos, -sin], [sin, cos]]``."""

    _d = 2
    _special = True
    _label = "SO(2)"
    _trivial_id = (0,)
    _standard_id = (1,)
    _ids_doc = "irreps of SO(2) are irrep(k) with an integer k >= 0"

    def sample(self, n: int | tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """Haar-random rotations, float64 ``(n, 2, 2)`` (``n`` an int or a batch shape)."""
        theta = torch.rand(_sample_shape(n), generator=generator, dtype=torch.float64) * (2 * math.pi)
        return rotation_2d(theta)

    def _is_irrep_id(self, key: tuple[int, ...]) -> bool:
        return len(key) == 1 and key[0] >= 0

    def _irrep_ids(self, m: int) -> list[tuple[int, ...]]:
        return [(k,) for k in range(m + 1)]

    def _irrep_dim(self, key: tuple[int, ...]) -> int:
        return 1 if key[0] == 0 else 2

    def _irrep_matrices(self, key: tuple[int, ...], g: Tensor) -> Tensor:
        if key[0] == 0:
            return torch.ones(g.shape[:-2] + (1, 1), dtype=g.dtype, device=g.device)
        if key[0] == 1:
            return g.clone()  # exactly the defining matrices
        return rotation_2d(key[0] * _angle(g))


@dataclass(frozen=True, repr=False)
class O2Group(_MatrixGroup):
    """Rotations and reflections of the plane: ``R(theta)`` and ``R(theta) diag(1, -1)``."""

    _d = 2
    _special = False
    _label = "O(2)"
    _trivial_id = (0, 0)
    _standard_id = (1, 1)
    _frequency_slot = 1
    _ids_doc = "irreps of O(2) are irrep(0, 0), irrep(1, 0) and irrep(1, k) with k >= 1"

    def sample(self, n: int | tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """Haar-random elements (half of them reflections), float64 ``(n, 2, 2)``."""
        shape = _sample_shape(n)
        theta = torch.rand(shape, generator=generator, dtype=torch.float64) * (2 * math.pi)
        flip = torch.rand(shape, generator=generator, dtype=torch.float64) < 0.5
        r = rotation_2d(theta)
        return torch.where(flip[..., None, None], torch.stack([r[..., 0], -r[..., 1]], -1), r)

    def _is_irrep_id(self, key: tuple[int, ...]) -> bool:
        return len(key) == 2 and ((key[1] == 0 and key[0] in (0, 1)) or (key[1] > 0 and key[0] == 1))

    def _irrep_ids(self, m: int) -> list[tuple[int, ...]]:
        return [(0, 0), (1, 0)] + [(1, k) for k in range(1, m + 1)]

    def _irrep_dim(self, key: tuple[int, ...]) -> int:
        return 1 if key[1] == 0 else 2

    def _irrep_matrices(self, key: tuple[int, ...], g: Tensor) -> Tensor:
        j, k = key
        if k == 0:
            ones = torch.ones(g.shape[:-2] + (1, 1), dtype=g.dtype, device=g.device)
            return ones if j == 0 else ones * _det_sign(g)[..., None, None]
        if k == 1:
            return g.clone()  # R(theta) diag(1, det) is g itself
        r = rotation_2d(k * _angle(g))
        sign = torch.stack([torch.ones_like(r[..., 0, 0]), _det_sign(g)], -1)  # (..., 2)
        return r * sign[..., None, :]  # R(k theta) diag(1, det)


def _random_rotations(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Haar-random rotation matrices from normalized Gaussian quaternions (w, x, y, z)."""
    q = torch.randn(shape + (4,), generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


@dataclass(frozen=True, repr=False)
class SO3Group(_MatrixGroup):
    """The rotations of space, ``(3, 3)`` matrices with determinant +1."""

    _d = 3
    _special = True
    _label = "SO(3)"
    _trivial_id = (0,)
    _standard_id = (1,)
    _ids_doc = "irreps of SO(3) are irrep(l) with an integer l >= 0"

    def sample(self, n: int | tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """Haar-random rotations, float64 ``(n, 3, 3)``."""
        return _random_rotations(_sample_shape(n), generator)

    def _is_irrep_id(self, key: tuple[int, ...]) -> bool:
        return len(key) == 1 and key[0] >= 0

    def _irrep_ids(self, m: int) -> list[tuple[int, ...]]:
        return [(l,) for l in range(m + 1)]

    def _irrep_dim(self, key: tuple[int, ...]) -> int:
        return 2 * key[0] + 1

    def _irrep_matrices(self, key: tuple[int, ...], g: Tensor) -> Tensor:
        return _so3_irrep(key[0], g)


@dataclass(frozen=True, repr=False)
class O3Group(_MatrixGroup):
    """Rotations and improper rotations of space, ``(3, 3)`` orthogonal matrices (det +-1)."""

    _d = 3
    _special = False
    _label = "O(3)"
    _trivial_id = (0, 1)
    _standard_id = (1, -1)
    _ids_doc = "irreps of O(3) are irrep(l, p) with an integer l >= 0 and parity p = 1 or -1"

    def sample(self, n: int | tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """Haar-random elements (half of them improper, ``-R``), float64 ``(n, 3, 3)``."""
        shape = _sample_shape(n)
        r = _random_rotations(shape, generator)
        flip = torch.rand(shape, generator=generator, dtype=torch.float64) < 0.5
        return torch.where(flip[..., None, None], -r, r)

    def _is_irrep_id(self, key: tuple[int, ...]) -> bool:
        return len(key) == 2 and key[0] >= 0 and key[1] in (1, -1)

    def _irrep_ids(self, m: int) -> list[tuple[int, ...]]:
        return [(l, p) for l in range(m + 1) for p in (-1, 1)]

    def _irrep_dim(self, key: tuple[int, ...]) -> int:
        return 2 * key[0] + 1

    def _irrep_matrices(self, key: tuple[int, ...], g: Tensor) -> Tensor:
        l, p = key
        d = _det_sign(g)
        out = _so3_irrep(l, d[..., None, None] * g)
        if p == -1:
            out = out * d[..., None, None]
        return out


def SO2() -> SO2Group:
    """The group of planar rotations."""
    return SO2Group()


def O2() -> O2Group:
    """The group of planar rotations and reflections."""
    return O2Group()


def SO3() -> SO3Group:
    """The group of rotations of 3d space."""
    return SO3Group()


def O3() -> O3Group:
    """The group of rotations and reflections of 3d space (``-I`` is the inversion)."""
    return O3Group()
