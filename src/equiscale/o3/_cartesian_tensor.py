"""``CartesianTensor``: a Cartesian tensor with index symmetries as irreps (``e3nn.io``'s).

``CartesianTensor("ij=ji")`` is the ``Irreps`` of a symmetric 3x3 tensor, ``1x0e+1x2e``, with
the maps between the ``(..., 3, 3)`` tensor and its ``(..., 6)`` irreps coefficients. The
change of basis is :class:`~equiscale.o3.ReducedTensorProducts`' with every index ``1o``
(equal to e3nn's to rounding); it is built once per formula, in float64, and cast to the data's
dtype, so float64 data converts to float64 accuracy (e3nn casts a default-dtype copy).
"""
from __future__ import annotations

import functools
from typing import Optional

import torch

from equiscale.errors import InvalidArgumentError
from equiscale.o3._irreps import Irreps
from equiscale.o3._reduced_tensor_products import ReducedTensorProducts, parse_formula

__all__ = ["CartesianTensor"]


@functools.lru_cache(maxsize=None)
def _reduction(formula: str) -> ReducedTensorProducts:
    """The formula's reduction with every index ``1o``, its change of basis set to float64."""
    indices, _ = parse_formula(formula)
    rtp = ReducedTensorProducts(formula, **{c: "1o" for c in indices})
    rtp.change_of_basis = rtp._change_of_basis64
    return rtp


class CartesianTensor(Irreps):
    """Irreps of a Cartesian tensor with index symmetries, and the conversions (e3nn 0.6's).

    ``CartesianTensor("ij=ji")`` is ``1x0e+1x2e``; ``"ij=-ji"`` is ``1x1e``; ``"ijkl=jikl=klij"``
    (an elasticity tensor) is ``2x0e+2x2e+1x4e``. Each index is a Cartesian vector ``(x, y, z)``
    (irrep ``1o``).

    Args:
        formula: index symmetries as for :class:`~equiscale.o3.ReducedTensorProducts`.

    Attributes:
        formula: the formula.
        indices: the index letters, in order (``"ij"``).
    """

    formula: str
    indices: str

    def __new__(cls, formula: str) -> "CartesianTensor":
        rtp = _reduction(formula)
        ret = super().__new__(cls, rtp.irreps_out)
        ret.formula = formula
        ret.indices = rtp.formula.split("=")[0]
        ret._rtp = rtp  # an attribute, not a cache lookup, so that torch.compile traces through
        return ret

    def __reduce__(self):  # pickle and copy rebuild from the formula
        return (self.__class__, (self.formula,))

    def _basis(self, data: torch.Tensor, rtp: Optional[ReducedTensorProducts]) -> torch.Tensor:
        q = (rtp if rtp is not None else self._rtp).change_of_basis
        return q.to(dtype=data.dtype, device=data.device)

    def _check_cartesian(self, data: torch.Tensor) -> None:
        n = len(self.indices)
        if data.dim() < n or tuple(data.shape[data.dim() - n:]) != (3,) * n:
            raise InvalidArgumentError(f"data: expected a Cartesian tensor of shape (..., {', '.join(['3'] * n)}) "
                                       f"for {self.formula!r}, got {tuple(data.shape)}")

    def from_cartesian(self, data: torch.Tensor, rtp: Optional[ReducedTensorProducts] = None) -> torch.Tensor:
        """Irreps coefficients of a Cartesian tensor (its projection onto the symmetric part).

        Args:
            data: ``(..., 3, 3, ...)``, one axis of size 3 per index.
            rtp: a reduction to take the change of basis from (default: the cached one).

        Returns:
            ``(..., self.dim)``.
        """
        self._check_cartesian(data)
        n = len(self.indices)
        q = self._basis(data, rtp).flatten(-n)
        return data.flatten(-n) @ q.T

    def from_vectors(self, *xs: torch.Tensor, rtp: Optional[ReducedTensorProducts] = None) -> torch.Tensor:
        """Irreps coefficients of the outer product ``x_1 (x) x_2 (x) ...`` of vectors.

        Args:
            *xs: one ``(..., 3)`` tensor per index; leading dimensions broadcast.
            rtp: a reduction to use (default: the cached one).

        Returns:
            ``(..., self.dim)``.
        """
        return (rtp if rtp is not None else self._rtp)(*xs)

    def to_cartesian(self, data: torch.Tensor, rtp: Optional[ReducedTensorProducts] = None) -> torch.Tensor:
        """The Cartesian tensor of irreps coefficients (inverse of :meth:`from_cartesian` on
        tensors with the formula's symmetries).

        Args:
            data: ``(..., self.dim)``.
            rtp: a reduction to take the change of basis from (default: the cached one).

        Returns:
            ``(..., 3, 3, ...)``, one axis of size 3 per index.
        """
        if data.dim() < 1 or data.shape[-1] != self.dim:
            raise InvalidArgumentError(f"data: expected shape (..., {self.dim}) for {self.formula!r} "
                                       f"(irreps {Irreps(self)}), got {tuple(data.shape)}")
        q = self._basis(data, rtp)
        out = data @ q.flatten(-len(self.indices))
        return out.view(data.shape[:-1] + q.shape[1:])

    def reduced_tensor_products(self, data: Optional[torch.Tensor] = None) -> ReducedTensorProducts:
        """A new :class:`~equiscale.o3.ReducedTensorProducts` of the formula, every index ``1o``.

        Args:
            data: if given, the module is moved to its device and its change of basis to its dtype
                (from float64, without rounding through the default dtype).

        Returns:
            The module.
        """
        rtp = ReducedTensorProducts(self.formula, **{c: "1o" for c in self.indices})
        if data is not None:
            rtp = rtp.to(device=data.device)
            rtp.change_of_basis = self._rtp.change_of_basis.to(dtype=data.dtype, device=data.device)
        return rtp
