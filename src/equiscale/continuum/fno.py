"""Fourier neural operators for one step of 2D vorticity: :class:`GFNO` (equivariant) and :class:`FNO`.

Both follow the FNO of Li et al. (2021) without a positional embedding (so they stay translation
equivariant on the periodic grid): a pointwise lift to ``width`` channels, ``layers`` Fourier layers
``h -> act(spectral(h) + pointwise(h))`` (no activation after the last), and a pointwise projection
``width -> projection -> 1``. Every operation is pointwise or acts on the fixed modes
``|ky|, |kx| <= modes``, so a model trained at 64x64 runs unchanged at 128x128.

* :class:`GFNO` (Helwig et al. 2023, G-FNO): the same with regular fields of C(4) or D(4) (any C(n),
  D(n) with n in {1, 2, 4}): the lift is a 1x1 :class:`~equiscale.nn.grids.LiftingConv2d`, the
  pointwise maps 1x1 :class:`~equiscale.nn.grids.GroupConv2d`, the Fourier layers
  :class:`~.spectral.GroupSpectralConv2d`, and the output a projection onto the vorticity's character
  (:class:`~equiscale.nn.grids.GroupPool` mean). Exactly equivariant: ``f(g.w) = g.f(w)`` for every
  90-degree rotation and, under D(4), reflection with the pseudo-scalar sign (a reflected flow has
  ``-w`` reflected).
* :class:`FNO`: the plain twin (``width`` channels, :class:`~.spectral.SpectralConv2d`).

Inputs and outputs as :class:`~.increment.IncrementModel`; the grid must be square, even, and hold
``N >= 2 * modes + 2`` points per axis.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from equiscale.continuum.increment import IncrementModel, parse_group, pseudo_scalar
from equiscale.continuum.spectral import GroupSpectralConv2d, SpectralConv2d, check_modes
from equiscale.nn.grids import GroupConv2d, GroupPool, LiftingConv2d

__all__ = ["FNO", "GFNO"]


class _FNOBase(IncrementModel):
    modes: int

    def check_grid(self, height: int, width: int) -> None:
        """Square, even, and at least ``2 * modes + 2`` points per axis; InvalidArgumentError otherwise."""
        super().check_grid(height, width)
        check_modes(height, width, self.modes, type(self).__name__)

    def _trunk(self, h: Tensor) -> Tensor:
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise)):
            h = spectral(h) + pointwise(h)
            if i < last:
                h = self.act(h)
        return h


class GFNO(_FNOBase):
    """Group-equivariant Fourier neural operator (G-FNO) for one step of vorticity, C(4) or D(4).

    Args:
        group: ``"C4"``, ``"D4"`` or a group ``C(n)``/``D(n)`` with n in {1, 2, 4}.
        width: regular fields in the Fourier layers (``width * |G|`` channels).
        layers: Fourier layers.
        modes: highest kept frequency per axis (12 keeps 25 x 13 modes of the real FFT).
        projection: regular fields of the hidden pointwise layer of the projection.
        field_scale, delta_scale: as :class:`~.increment.IncrementModel`.

    Symmetry: vorticity ``w(p) -> chi(a) w(a^-1 p)`` in and out, ``chi`` the sign character of D(n)
    (1 under C(n)); the hidden features transform by the regular representation.
    """

    def __init__(self, group: Any = "C4", width: int = 8, layers: int = 4, modes: int = 12, projection: int = 16,
                 field_scale: float = 1.0, delta_scale: float = 1.0) -> None:
        super().__init__(field_scale, delta_scale)
        self.group = parse_group(group)
        self.modes = modes
        pseudo = pseudo_scalar(self.group)
        self.lift = LiftingConv2d(1, width, 1, self.group, in_rep=pseudo)
        self.spectral = nn.ModuleList(GroupSpectralConv2d(width, width, modes, self.group) for _ in range(layers))
        self.pointwise = nn.ModuleList(GroupConv2d(width, width, 1, self.group) for _ in range(layers))
        self.act = nn.GELU()
        self.project = nn.Sequential(GroupConv2d(width, projection, 1, self.group), nn.GELU(),
                                     GroupConv2d(projection, 1, 1, self.group), GroupPool("mean", rep=pseudo))

    def net(self, x: Tensor) -> Tensor:
        return self.project(self._trunk(self.lift(x)))


class FNO(_FNOBase):
    """The plain Fourier neural operator with the structure of :class:`GFNO` (``width`` channels).

    Args:
        width: channels in the Fourier layers; :func:`~.models.build_model` by default matches
            the parameters of the G-FNO.
        layers, modes, field_scale, delta_scale: as :class:`GFNO`.
        projection: channels of the projection's hidden layer.

    Not equivariant under rotations.
    """

    def __init__(self, width: int = 16, layers: int = 4, modes: int = 12, projection: int = 32,
                 field_scale: float = 1.0, delta_scale: float = 1.0) -> None:
        super().__init__(field_scale, delta_scale)
        self.modes = modes
        self.lift = nn.Conv2d(1, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        self.act = nn.GELU()
        self.project = nn.Sequential(nn.Conv2d(width, projection, 1), nn.GELU(), nn.Conv2d(projection, 1, 1))

    def net(self, x: Tensor) -> Tensor:
        return self.project(self._trunk(self.lift(x)))
