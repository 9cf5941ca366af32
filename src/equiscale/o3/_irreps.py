r"""Irreducible representations of O(3) and their direct sums, with e3nn 0.6's API and conventions.

``Irrep(l, p)`` is the degree ``l`` representation with parity ``p`` (``"1o"`` = vector,
``"1e"`` = pseudovector, ``"ly"`` = parity ``(-1)^l`` as the spherical harmonics). Its matrix on
``g = (-1)^k R`` (``R`` a rotation, ``k`` in {0, 1}) is ``p^k D^l(R)``. ``Irreps`` is a tuple of
``(mul, ir)`` pairs, written ``"16x0e + 8x1o"``; features are laid out ``mul`` copies of each irrep
one after the other (e3nn's ``mul_ir`` order).

Matrices are float64-accurate for float64 inputs (see ``equiscale.o3._wigner``), never pass
through Euler angles when a matrix is given, and are differentiable.

Why this file is past ~400 lines: ``Irrep`` and ``Irreps`` are one concept (an irreps string is a
tuple of irreps) and mirror e3nn's one-module API method for method, so that code ports by changing
imports; splitting them would scatter that vocabulary.
"""
from __future__ import annotations

import collections
import itertools
import re
from typing import Callable, Iterator, List, Optional, Union

import torch

from equiscale.o3 import _rotation
from equiscale.o3._wigner import _irrep_matrices, _matrix_and_k, _split_o3
from equiscale.errors import InvalidArgumentError

__all__ = ["Irrep", "Irreps"]

_PARITY = {"e": 1, "o": -1}
_UINT = re.compile(r"\s*[0-9]+\s*")
_SortResult = collections.namedtuple("sort", ["irreps", "p", "inv"])


def _parse_irrep(text: str) -> "Irrep":
    """``"1o"`` -> ``Irrep(1, -1)``; raise ValueError naming the problem."""
    name = text.strip()
    if len(name) < 2 or not _UINT.fullmatch(name[:-1]):
        raise InvalidArgumentError(f'cannot read "{name}" as an irrep: expected a degree l >= 0 followed by '
                                   f'"e", "o" or "y", as in "1o"')
    l = int(name[:-1])
    letter = name[-1]
    if letter == "y":
        return Irrep(l, (-1) ** l)
    if letter not in _PARITY:
        raise InvalidArgumentError(f'cannot read "{name}" as an irrep: parity "{letter}" must be "e", "o" or '
                                   f'"y"')
    return Irrep(l, _PARITY[letter])


def _not_implemented(self, *args):
    raise NotImplementedError


def _tuple_eq(self: tuple, other, parse) -> bool:
    """Tuple equality, where a string is first parsed with ``parse`` (unparsable: not equal)."""
    if isinstance(other, str):
        try:
            other = parse(other)
        except ValueError:
            return False
    return tuple.__eq__(self, other)


def _tuple_ne(self: tuple, other) -> bool:
    eq = self.__eq__(other)
    return eq if eq is NotImplemented else not eq


class Irrep(tuple):
    r"""Irreducible representation ``(l, p)`` of O(3): degree ``l >= 0`` and parity ``p = +-1``.

    ``Irrep(1, -1)``, ``Irrep("1o")``, ``Irrep("2y")`` (parity ``(-1)^l``), ``Irrep((1, -1))``.
    Ordered, hashed and compared as the tuple ``(l, p)`` (and equal to its string ``"1o"``).
    """

    def __new__(cls, l: Union[int, "Irrep", str, tuple], p: Optional[int] = None) -> "Irrep":
        if p is None:
            if isinstance(l, Irrep):
                return l
            if isinstance(l, _MulIr):
                return l.ir
            if isinstance(l, str):
                return _parse_irrep(l)
            try:
                l, p = l  # a pair (l, p), e.g. another library's Irrep
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"cannot make an Irrep from {l!r}: give (l, p), a string such as "
                                           f'"1o", or an Irrep') from None
        if isinstance(l, bool) or not isinstance(l, int):
            try:
                l = int(l.__index__())  # numpy integers and the like
            except AttributeError:
                raise InvalidArgumentError(f"l must be a non-negative integer, got {l!r}") from None
        if l < 0:
            raise InvalidArgumentError(f"l must be a non-negative integer, got {l}")
        if p not in (-1, 1):
            raise InvalidArgumentError(f"parity p must be 1 or -1, got {p!r}")
        return super().__new__(cls, (l, int(p)))

    @property
    def l(self) -> int:  # noqa: E743
        """Degree ``l``."""
        return self[0]

    @property
    def p(self) -> int:
        """Parity ``p = +-1``."""
        return self[1]

    @property
    def dim(self) -> int:
        """Dimension ``2l + 1``."""
        return 2 * self.l + 1

    def is_scalar(self) -> bool:
        """True for ``0e``."""
        return self.l == 0 and self.p == 1

    def __repr__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"

    def __eq__(self, other) -> bool:  # also Irrep("1o") == "1o"
        return _tuple_eq(self, other, Irrep)

    def __ne__(self, other) -> bool:
        return _tuple_ne(self, other)

    __hash__ = tuple.__hash__

    @classmethod
    def iterator(cls, lmax: Optional[int] = None) -> Iterator["Irrep"]:
        """All irreps ``0e, 0o, 1o, 1e, 2e, 2o, ...`` (up to ``lmax`` included if given)."""
        for l in itertools.count():
            yield Irrep(l, (-1) ** l)
            yield Irrep(l, -((-1) ** l))
            if l == lmax:
                break

    def __mul__(self, other) -> Iterator["Irrep"]:
        """Irreps in the tensor product: ``l = |l1 - l2| .. l1 + l2`` with parity ``p1 p2``."""
        other = Irrep(other)
        p = self.p * other.p
        for l in range(abs(self.l - other.l), self.l + other.l + 1):
            yield Irrep(l, p)

    def __rmul__(self, other: int) -> "Irreps":
        """``3 * Irrep("1e")`` is ``Irreps("3x1e")``."""
        if isinstance(other, bool) or not isinstance(other, int):
            return NotImplemented
        return Irreps([(other, self)])

    def __add__(self, other) -> "Irreps":
        return Irreps(self) + Irreps(other)

    # tuple behaviours that make no sense for an irrep raise, as in e3nn. ``len`` is left to
    # the tuple (2): torch.compile's guards call it, and e3nn's raising __len__ breaks them.
    count = index = __contains__ = _not_implemented

    # ----------------------------------------------------------------- matrices
    def D_from_matrix(self, R: torch.Tensor) -> torch.Tensor:
        r"""``p^k D^l(det(R) R)`` for ``R (..., 3, 3)`` in O(3), ``k = (1 - det R) / 2``: shape
        ``(..., 2l+1, 2l+1)`` in ``R``'s dtype, exact to rounding (no Euler angles). ValueError if
        ``R`` has the wrong shape or is not orthogonal."""
        return _irrep_matrices([self], *_split_o3(R))[0]

    def D_from_angles(self, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor,
                      k: Optional[torch.Tensor] = None) -> torch.Tensor:
        r"""``p^k D^l(Y(alpha) X(beta) Y(gamma))``, shape ``(..., 2l+1, 2l+1)``; inputs broadcast."""
        return _irrep_matrices([self], *_matrix_and_k(alpha, beta, gamma, k))[0]

    def D_from_quaternion(self, q: torch.Tensor, k: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Matrix for the quaternion ``q (..., 4)`` (and parity power ``k (...)``)."""
        return _irrep_matrices([self], _rotation.quaternion_to_matrix(q), k)[0]

    def D_from_axis_angle(self, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        """Matrix for the rotation by ``angle (...)`` about ``axis (..., 3)``."""
        return _irrep_matrices([self], _rotation.axis_angle_to_matrix(axis, angle), None)[0]


class _MulIr(tuple):
    """``(mul, ir)``: ``mul`` copies of the irrep ``ir``; ``repr`` is ``"3x1o"``."""

    def __new__(cls, mul, ir=None) -> "_MulIr":
        if ir is None:
            mul, ir = mul
        if isinstance(mul, bool) or not isinstance(mul, int) or mul < 0:
            raise InvalidArgumentError(f"multiplicity must be a non-negative integer, got {mul!r}")
        return super().__new__(cls, (mul, Irrep(ir)))

    @property
    def mul(self) -> int:
        return self[0]

    @property
    def ir(self) -> Irrep:
        return self[1]

    @property
    def dim(self) -> int:
        return self.mul * self.ir.dim

    def __repr__(self) -> str:
        return f"{self.mul}x{self.ir}"

    count = index = _not_implemented


def _parse_irreps(text: str) -> List[_MulIr]:
    """``"16x0e + 8x1o"`` -> list of ``_MulIr``; raise ValueError naming the bad term."""
    if text.strip() == "":
        return []
    out = []
    for term in text.split("+"):
        t = term.strip()
        if t == "":
            raise InvalidArgumentError(f'cannot read "{text}" as Irreps: empty term (a stray "+")')
        mul, sep, ir = t.partition("x")
        if not sep:
            mul, ir = "1", t
        if not _UINT.fullmatch(mul):
            raise InvalidArgumentError(f'cannot read "{text}" as Irreps: multiplicity "{mul.strip()}" in '
                                       f'"{t}" is not a non-negative integer')
        try:
            out.append(_MulIr(int(mul), _parse_irrep(ir)))
        except ValueError as e:
            raise InvalidArgumentError(f'cannot read "{text}" as Irreps: in term "{t}", {e}') from None
    return out


class Irreps(tuple):
    r"""Direct sum of irreps of O(3): a tuple of ``(mul, ir)`` pairs (``_MulIr``).

    ``Irreps("16x0e + 8x1o")``, ``Irreps([(16, "0e"), (8, (1, -1))])``, ``Irreps(Irrep("1o"))``,
    ``Irreps()``. ``repr``/``str`` is ``"16x0e+8x1o"`` and parses back; equal to such a string.
    """

    def __new__(cls, irreps=None) -> "Irreps":
        if isinstance(irreps, Irreps):
            return super().__new__(cls, irreps)
        if irreps is None:
            out = []
        elif isinstance(irreps, Irrep):
            out = [_MulIr(1, irreps)]
        elif isinstance(irreps, str):
            out = _parse_irreps(irreps)
        else:
            out = []
            for mul_ir in irreps:
                if isinstance(mul_ir, (_MulIr, str, Irrep)):
                    out.append(_MulIr(1, mul_ir) if not isinstance(mul_ir, _MulIr) else mul_ir)
                elif isinstance(mul_ir, (tuple, list)) and len(mul_ir) == 2:
                    out.append(_MulIr(mul_ir[0], Irrep(mul_ir[1])))
                else:
                    raise InvalidArgumentError(f'cannot interpret "{mul_ir!r}" as (mul, irrep)')
        return super().__new__(cls, out)

    @staticmethod
    def spherical_harmonics(lmax: int, p: int = -1) -> "Irreps":
        """``1x0e + 1x1o + ... `` up to ``lmax``: irrep ``l`` has parity ``p**l``."""
        return Irreps([(1, (l, p**l)) for l in range(lmax + 1)])

    # ----------------------------------------------------------------- sizes
    @property
    def dim(self) -> int:
        """Total dimension ``sum(mul * (2l + 1))``."""
        return sum(mul * ir.dim for mul, ir in self)

    @property
    def num_irreps(self) -> int:
        """Sum of the multiplicities."""
        return sum(mul for mul, _ in self)

    @property
    def ls(self) -> List[int]:
        """The degree of every copy, e.g. ``[0, 0, 1]`` for ``"2x0e + 1o"``."""
        return [ir.l for mul, ir in self for _ in range(mul)]

    @property
    def lmax(self) -> int:
        """Largest degree with a non-zero multiplicity; ValueError if there is none."""
        ls = [ir.l for mul, ir in self if mul > 0]
        if not ls:
            raise InvalidArgumentError(f'lmax of Irreps "{self}" is undefined: it holds no irrep')
        return max(ls)

    def slices(self) -> List[slice]:
        """Slice of each ``(mul, ir)`` block in a feature vector of size ``dim``."""
        out, i = [], 0
        for mul_ir in self:
            out.append(slice(i, i + mul_ir.dim))
            i += mul_ir.dim
        return out

    def randn(self, *size: int, normalization: str = "component", requires_grad: bool = False,
              dtype: Optional[torch.dtype] = None, device: Optional[torch.device] = None) -> torch.Tensor:
        """Random features; ``size`` holds one ``-1`` (replaced by ``dim``). ``"component"``:
        standard normal entries; ``"norm"``: each irrep copy a random unit vector."""
        if size.count(-1) != 1:
            raise InvalidArgumentError(f"randn: size must contain exactly one -1 (the irreps axis), got {size}")
        di = size.index(-1)
        lsize, rsize = size[:di], size[di + 1:]
        if normalization == "component":
            return torch.randn(*lsize, self.dim, *rsize, requires_grad=requires_grad, dtype=dtype,
                               device=device)
        if normalization != "norm":
            raise InvalidArgumentError(f"normalization must be 'component' or 'norm', got {normalization!r}")
        x = torch.zeros(*lsize, self.dim, *rsize, dtype=dtype, device=device)
        for s, (mul, ir) in zip(self.slices(), self):
            r = torch.randn(*lsize, mul, ir.dim, *rsize, dtype=dtype, device=device)
            r = r / r.norm(2, dim=di + 1, keepdim=True)
            x.narrow(di, s.start, mul * ir.dim).copy_(r.reshape(*lsize, -1, *rsize))
        return x.requires_grad_(requires_grad)

    # ----------------------------------------------------------------- tuple behaviour
    def __getitem__(self, i):
        x = super().__getitem__(i)
        return Irreps(x) if isinstance(i, slice) else x

    def __contains__(self, ir) -> bool:
        ir = Irrep(ir)
        return any(ir == x for _, x in self)

    def count(self, ir) -> int:
        """Total multiplicity of the irrep ``ir``."""
        ir = Irrep(ir)
        return sum(mul for mul, x in self if x == ir)

    index = _not_implemented

    def __eq__(self, other) -> bool:  # also Irreps("2x0e") == "2x0e"
        return _tuple_eq(self, other, Irreps)

    def __ne__(self, other) -> bool:
        return _tuple_ne(self, other)

    __hash__ = tuple.__hash__

    def __add__(self, irreps) -> "Irreps":
        return Irreps(tuple.__add__(self, Irreps(irreps)))

    def __radd__(self, irreps) -> "Irreps":
        return Irreps(irreps) + self

    def __mul__(self, other: int) -> "Irreps":
        """Repeat: ``Irreps("0e") * 3`` is ``"1x0e+1x0e+1x0e"``."""
        if isinstance(other, Irreps):
            raise NotImplementedError("use a tensor product for the product of two Irreps")
        return Irreps(tuple.__mul__(self, other))

    def __rmul__(self, other: int) -> "Irreps":
        return Irreps(tuple.__rmul__(self, other))

    def __repr__(self) -> str:
        return "+".join(repr(mul_ir) for mul_ir in self)

    # ----------------------------------------------------------------- rearranging
    def simplify(self) -> "Irreps":
        """Merge neighbouring equal irreps and drop zero multiplicities (does not sort)."""
        out = []
        for mul, ir in self:
            if out and out[-1][1] == ir:
                out[-1] = (out[-1][0] + mul, ir)
            elif mul > 0:
                out.append((mul, ir))
        return Irreps(out)

    def remove_zero_multiplicities(self) -> "Irreps":
        """Drop the terms with multiplicity 0."""
        return Irreps([(mul, ir) for mul, ir in self if mul > 0])

    def sort(self):
        """Stable sort by irrep: named tuple ``(irreps, p, inv)``.

        ``inv[i]`` is the old index of new term ``i``; ``p[j]`` is the new index of old term ``j``.
        """
        order = sorted(range(len(self)), key=lambda i: (self[i].ir, i))
        inv = tuple(order)
        p = [0] * len(inv)
        for new, old in enumerate(inv):
            p[old] = new
        return _SortResult(Irreps([self[i] for i in inv]), tuple(p), inv)

    def regroup(self) -> "Irreps":
        """``sort().irreps.simplify()``: one term per distinct irrep, in order."""
        return self.sort().irreps.simplify()

    def filter(self, keep: Union["Irreps", List[Irrep], Callable, None] = None, *,
               drop: Union["Irreps", List[Irrep], Callable, None] = None,
               lmax: Optional[int] = None) -> "Irreps":
        """Keep only the terms in ``keep``, or drop those in ``drop``, or those with ``l <= lmax``."""
        if sum(x is not None for x in (keep, drop, lmax)) > 1:
            raise InvalidArgumentError("filter: give at most one of keep, drop and lmax")
        if lmax is not None:
            return Irreps([(mul, ir) for mul, ir in self if ir.l <= lmax])
        sel, flip = (keep, False) if keep is not None else (drop, True)
        if sel is None:
            return self
        if callable(sel) and not isinstance(sel, (Irreps, Irrep, str)):
            return Irreps([m for m in self if bool(sel(m)) != flip])
        if isinstance(sel, str):
            sel = Irreps(sel)
        if isinstance(sel, (Irrep, _MulIr)):
            sel = [sel]
        irs = {x.ir if isinstance(x, _MulIr) else Irrep(x) for x in sel}
        return Irreps([(mul, ir) for mul, ir in self if (ir in irs) != flip])

    # ----------------------------------------------------------------- matrices
    def _block_diag(self, R: torch.Tensor, k: Optional[torch.Tensor]) -> torch.Tensor:
        irs = sorted({ir for mul, ir in self if mul > 0})
        blocks = dict(zip(irs, _irrep_matrices(irs, R, k, contiguous=False)))
        out = R.new_zeros(*R.shape[:-2], self.dim, self.dim)
        for (mul, ir), sl in zip(self, self.slices()):
            if mul == 1:
                out[..., sl, sl] = blocks[ir]
            elif mul > 1:  # mul copies of D on the diagonal: eye(mul) (x) D
                eye = torch.eye(mul, dtype=R.dtype, device=R.device)
                out[..., sl, sl] = torch.einsum("uv,...ij->...uivj", eye, blocks[ir]).reshape(
                    *R.shape[:-2], mul * ir.dim, mul * ir.dim)
        return out

    def D_from_matrix(self, R: torch.Tensor) -> torch.Tensor:
        """Block-diagonal ``(..., dim, dim)`` matrix of ``R (..., 3, 3)`` in O(3) (see ``Irrep``);
        ValueError if ``R`` has the wrong shape or is not orthogonal."""
        return self._block_diag(*_split_o3(R))

    def D_from_angles(self, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor,
                      k: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Block-diagonal ``(..., dim, dim)`` matrix of ``(-1)^k Y(alpha) X(beta) Y(gamma)``."""
        return self._block_diag(*_matrix_and_k(alpha, beta, gamma, k))

    def D_from_quaternion(self, q: torch.Tensor, k: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Block-diagonal ``(..., dim, dim)`` matrix of the quaternion ``q (..., 4)``."""
        return self._block_diag(_rotation.quaternion_to_matrix(q), k)

    def D_from_axis_angle(self, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        """Block-diagonal ``(..., dim, dim)`` matrix of the rotation by ``angle`` about ``axis``."""
        return self._block_diag(_rotation.axis_angle_to_matrix(axis, angle), None)
