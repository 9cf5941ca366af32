"""The finite planar groups: cyclic ``C(n)`` and dihedral ``D(n)``.

Elements are int64 index tensors of any shape ``(...)``:

* ``C(n)``: index ``k`` is the counter-clockwise rotation by ``2 pi k / n``.
* ``D(n)``: index ``k < n`` is ``r^k``; index ``n + k`` is ``r^k s``, where ``r`` rotates by
  ``2 pi / n`` and ``s`` reflects across the x-axis, ``(x, y) -> (x, -y)`` (``s`` acts first).

``compose(a, b)`` is "a after b".  Irrep ids:

* ``C(n).irrep(k)``, ``k = 0 .. n // 2``: ``k = 0`` trivial; ``0 < k < n/2`` the 2d rotation by
  ``k * 2 pi a / n`` (complex type: its commutant is 2-dimensional); ``k = n/2`` (even ``n``)
  the 1d sign ``(-1)^a``.
* ``D(n).irrep(j, k)``, ``j`` the reflection flag, ``k`` the frequency: ``(0, 0)`` trivial,
  ``(1, 0)`` ``rho(s) = -1``; ``0 < k < n/2``: ``(1, k)`` 2d with ``rho(r) = rotation by
  2 pi k / n`` and ``rho(s) = diag(1, -1)``; even ``n``: ``(0, n/2)``, ``(1, n/2)`` 1d with
  ``rho(r) = -1``, ``rho(s) = (-1)^j``.  All of real type.

``irreps()`` lists them sorted by frequency ``k``, then ``j``: the canonical order of
decompositions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from equiscale.groups._common import as_int, rotation_2d
from equiscale.groups._representation import Representation

__all__ = ["CyclicGroup", "DihedralGroup", "C", "D"]



def _times_reflection(r: Tensor) -> Tensor:
    """``r @ diag(1, -1)`` for matrices (..., 2, 2): negate the second column."""
    return torch.stack([r[..., 0], -r[..., 1]], -1)


class _FiniteGroup:
    """Code shared by the finite groups (one level, no further hierarchy).

    Subclasses define ``order``, ``name``, ``generators``, ``irrep_ids``, ``_compose``,
    ``_inverse``, ``_irrep_dim``, ``_irrep_matrices`` and ``_standard_matrices``.
    """

    is_finite = True

    def __repr__(self) -> str:
        return self.name

    @property
    def order(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def name(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def identity(self) -> Tensor:
        """The identity element: ``tensor(0)``."""
        return torch.tensor(0, dtype=torch.int64)

    def elements(self) -> Tensor:
        """All elements in their fixed order: ``arange(order)`` (int64)."""
        return torch.arange(self.order, dtype=torch.int64)

    def validate(self, g: Any) -> Tensor:
        """Return ``g`` as an int64 tensor of element indices; ValueError if not in ``0 .. order-1``."""
        if isinstance(g, Tensor):
            if g.dtype.is_floating_point or g.dtype.is_complex or g.dtype == torch.bool:
                raise ValueError(f"elements of {self.name} are integer indices, got a {g.dtype} tensor "
                                 f"of shape {tuple(g.shape)} (an element of another group?)")
            g = g.to(torch.int64)
        else:
            try:
                g = torch.as_tensor(g)
            except (TypeError, ValueError, RuntimeError) as e:
                raise ValueError(f"elements of {self.name} are integer indices, got {g!r}") from e
            if g.dtype.is_floating_point or g.dtype.is_complex or g.dtype == torch.bool:
                raise ValueError(f"elements of {self.name} are integer indices, got {g!r}")
            g = g.to(torch.int64)
        if g.numel() and (int(g.min()) < 0 or int(g.max()) >= self.order):
            raise ValueError(f"element index out of range for {self.name}: indices must be in "
                             f"0..{self.order - 1}, got values in {int(g.min())}..{int(g.max())}")
        return g

    def compose(self, a: Any, b: Any) -> Tensor:
        """The product ``a b`` ("a after b"), broadcast over the batch shapes of ``a`` and ``b``."""
        return self._compose(self.validate(a), self.validate(b))

    def inverse(self, a: Any) -> Tensor:
        """The inverse ``a^-1``, same shape as ``a``."""
        return self._inverse(self.validate(a))

    def sample(self, n: int | tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """``n`` elements drawn uniformly (``n`` an int or a shape), int64 of shape ``(n,)`` or ``n``."""
        shape = (as_int(n, "sample size"),) if not isinstance(n, tuple) else tuple(as_int(x, "sample size") for x in n)
        if any(s < 0 for s in shape):
            raise ValueError(f"sample size must be >= 0, got {n!r}")
        return torch.randint(self.order, shape, generator=generator, dtype=torch.int64)

    @property
    def cayley_table(self) -> Tensor:
        """``table[a, b] = compose(a, b)``, int64 ``(order, order)``."""
        e = self.elements()
        return self._compose(e[:, None], e[None, :])

    # --- representations --------------------------------------------------------------------
    def irrep(self, *ids: Any) -> Representation:
        """The irrep with the given ids (see the module docstring); ValueError if none has them."""
        key = self._irrep_key(ids)
        dim = self._irrep_dim(key)
        return Representation(self, dim, lambda g: self._irrep_matrices(key, g),
                              name=f"{self.name} irrep{key}", irrep_id=key)

    def irreps(self) -> list[Representation]:
        """All irreps, in the canonical order of ``irrep_ids``."""
        return [self.irrep(*k) for k in self.irrep_ids]

    def trivial_representation(self) -> Representation:
        """The 1d trivial representation ``g -> [[1]]`` (the first irrep)."""
        return self.irrep(*self.irrep_ids[0])

    def standard_representation(self) -> Representation:
        """The action on the plane R^2 (x, y); for ``n >= 3`` it is the frequency-1 irrep."""
        std = self._standard_irrep_id()
        if std is not None:
            rep = self.irrep(*std)
            return Representation(self, 2, rep._fn, name=f"{self.name} standard", irrep_id=std)
        return Representation(self, 2, self._standard_matrices, name=f"{self.name} standard")

    def regular_representation(self) -> Representation:
        """``rho(g) e_h = e_{g h}``: permutation matrices ``(..., order, order)`` in ``elements()`` order."""
        table = self.cayley_table
        n = self.order

        def regular(g: Tensor) -> Tensor:
            rows = table.to(g.device)[g]  # (..., n): column h goes to row g h
            onehot = torch.nn.functional.one_hot(rows, n).to(torch.float64)  # (..., h, gh)
            return onehot.transpose(-1, -2)

        return Representation(self, n, regular, name=f"{self.name} regular")

    def _irrep_key(self, ids: tuple[Any, ...]) -> tuple[int, ...]:
        key = tuple(as_int(i, f"{self.name} irrep id") for i in ids)
        if key not in self.irrep_ids:
            raise ValueError(f"{self.name} has no irrep {key}; its irreps are {list(self.irrep_ids)}")
        return key


@dataclass(frozen=True, repr=False)
class CyclicGroup(_FiniteGroup):
    """The cyclic group ``C(n)`` of planar rotations by multiples of ``2 pi / n``."""

    n: int

    def __post_init__(self) -> None:
        n = as_int(self.n, "C(n): n")
        if n < 1:
            raise ValueError(f"C(n) needs n >= 1, got n={n}")
        object.__setattr__(self, "n", n)

    @property
    def order(self) -> int:
        """``n``."""
        return self.n

    @property
    def name(self) -> str:
        return f"C({self.n})"

    @property
    def generators(self) -> tuple[int, ...]:
        """``(1,)``: the rotation by ``2 pi / n`` (empty for ``C(1)``)."""
        return (1,) if self.n > 1 else ()

    @property
    def irrep_ids(self) -> tuple[tuple[int, ...], ...]:
        """``((0,), (1,), ..., (n // 2,))``."""
        return tuple((k,) for k in range(self.n // 2 + 1))

    def _compose(self, a: Tensor, b: Tensor) -> Tensor:
        return (a + b) % self.n

    def _inverse(self, a: Tensor) -> Tensor:
        return (-a) % self.n

    def _irrep_dim(self, key: tuple[int, ...]) -> int:
        k = key[0]
        return 1 if k == 0 or 2 * k == self.n else 2

    def _irrep_matrices(self, key: tuple[int, ...], g: Tensor) -> Tensor:
        k = key[0]
        if k == 0:
            return torch.ones(g.shape + (1, 1), dtype=torch.float64, device=g.device)
        if 2 * k == self.n:
            return (1.0 - 2.0 * (g % 2).to(torch.float64))[..., None, None]
        return rotation_2d(((k * g) % self.n).to(torch.float64) * (2 * math.pi / self.n))

    def _standard_irrep_id(self) -> tuple[int, ...] | None:
        return (1,) if self.n >= 3 else None

    def _standard_matrices(self, g: Tensor) -> Tensor:
        return rotation_2d(g.to(torch.float64) * (2 * math.pi / self.n))


@dataclass(frozen=True, repr=False)
class DihedralGroup(_FiniteGroup):
    """The dihedral group ``D(n)`` of order ``2n``: ``C(n)`` and the reflections ``r^k s``."""

    n: int

    def __post_init__(self) -> None:
        n = as_int(self.n, "D(n): n")
        if n < 1:
            raise ValueError(f"D(n) needs n >= 1, got n={n}")
        object.__setattr__(self, "n", n)

    @property
    def order(self) -> int:
        """``2 n``."""
        return 2 * self.n

    @property
    def name(self) -> str:
        return f"D({self.n})"

    @property
    def generators(self) -> tuple[int, ...]:
        """``(1, n)``: ``r`` and ``s`` (only ``(1,)``, i.e. ``s``, for ``D(1)``)."""
        return (1, self.n) if self.n > 1 else (1,)

    @property
    def irrep_ids(self) -> tuple[tuple[int, ...], ...]:
        """``(0, 0), (1, 0), (1, 1), ..., (1, k < n/2)``, then ``(0, n/2), (1, n/2)`` for even n."""
        ids = [(0, 0), (1, 0)] + [(1, k) for k in range(1, (self.n + 1) // 2)]
        if self.n % 2 == 0:
            ids += [(0, self.n // 2), (1, self.n // 2)]
        return tuple(ids)

    def _split(self, g: Tensor) -> tuple[Tensor, Tensor]:
        """``g = r^k s^f`` -> ``(k, f)``."""
        return g % self.n, g // self.n

    def _compose(self, a: Tensor, b: Tensor) -> Tensor:
        ka, fa = self._split(a)
        kb, fb = self._split(b)
        # r^ka s^fa r^kb s^fb = r^(ka + (-1)^fa kb) s^(fa + fb)
        k = (ka + (1 - 2 * fa) * kb) % self.n
        return k + self.n * ((fa + fb) % 2)

    def _inverse(self, a: Tensor) -> Tensor:
        k, f = self._split(a)
        # (r^k)^-1 = r^-k; reflections are their own inverse
        return torch.where(f == 1, a, (-k) % self.n)

    def _irrep_dim(self, key: tuple[int, ...]) -> int:
        j, k = key
        return 1 if k == 0 or 2 * k == self.n else 2

    def _irrep_matrices(self, key: tuple[int, ...], g: Tensor) -> Tensor:
        j, k = key
        rot, f = self._split(g)
        if k == 0 or 2 * k == self.n:
            sign = torch.ones(g.shape, dtype=torch.float64, device=g.device)
            if j == 1:
                sign = sign * (1.0 - 2.0 * f.to(torch.float64))
            if k > 0:
                sign = sign * (1.0 - 2.0 * (rot % 2).to(torch.float64))
            return sign[..., None, None]
        r = rotation_2d(((k * rot) % self.n).to(torch.float64) * (2 * math.pi / self.n))
        return torch.where((f == 1)[..., None, None], _times_reflection(r), r)

    def _standard_irrep_id(self) -> tuple[int, ...] | None:
        return (1, 1) if self.n >= 3 else None

    def _standard_matrices(self, g: Tensor) -> Tensor:
        rot, f = self._split(g)
        r = rotation_2d(rot.to(torch.float64) * (2 * math.pi / self.n))
        return torch.where((f == 1)[..., None, None], _times_reflection(r), r)


def C(n: int) -> CyclicGroup:
    """The cyclic group of order ``n >= 1`` (rotations by ``2 pi k / n``)."""
    return CyclicGroup(n)


def D(n: int) -> DihedralGroup:
    """The dihedral group of order ``2 n`` (``n >= 1``): rotations and reflections of an n-gon."""
    return DihedralGroup(n)
