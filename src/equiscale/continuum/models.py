"""One-step surrogates of 2D vorticity: ``w(t) -> w(t + dt)``, each a residual network on a periodic grid.

* :class:`FluidGCNN`: lifting convolution, residual group-convolution blocks, a projection back to
  one field; C(4) or D(4), circular padding. Exactly equivariant: ``f(g.w) = g.f(w)`` for every
  90-degree rotation (and, for D(4), reflection, with the pseudo-scalar sign: a reflected flow has
  ``-w`` reflected), to float rounding.
* :class:`FluidCNN`: the same network with plain convolutions (the baseline, and with random
  rotations of the data the "augmented CNN"); :func:`cnn_width_matching` picks its width so that it
  has about as many parameters as a given G-CNN.

The field's standard surrogates and their equivariant versions live beside them:
:class:`~.unet.GUNet`/:class:`~.unet.UNet` (PDEArena-style U-Nets) and :class:`~.fno.GFNO`/:class:`~.fno.FNO`
(Fourier neural operators); :func:`build_model` builds any of them by name.

Inputs and outputs are ``(B, H, W)`` (or ``(B, 1, H, W)``, kept as given). Every model predicts the
increment (:class:`~.increment.IncrementModel`): ``f(w) = w + delta_scale * net(w / field_scale)``,
with two scalar scales from the data (scalars keep equivariance).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from equiscale.continuum.fno import FNO, GFNO
from equiscale.continuum.increment import IncrementModel, parse_group, pseudo_scalar
from equiscale.continuum.unet import GUNet, UNet
from equiscale.errors import InvalidArgumentError
from equiscale.nn.grids import GroupConv2d, GroupPool, LiftingConv2d
from equiscale.train.metrics import count_parameters

__all__ = ["FluidGCNN", "FluidCNN", "GUNet", "UNet", "GFNO", "FNO", "IncrementModel", "MODELS", "build_model",
           "count_parameters", "cnn_width_matching", "width_matching", "parse_group"]

MODELS = ("gcnn", "cnn", "cnn-aug", "gunet", "unet", "gfno", "fno")


class FluidGCNN(IncrementModel):
    """Residual G-CNN for one step of 2D vorticity, exactly C(4)/D(4)-equivariant.

    ``width`` regular fields (``width * |G|`` channels) in ``blocks`` residual blocks
    ``x + conv(act(conv(act(x))))``; kernel ``kernel_size`` with circular padding. Under D(4) the
    vorticity enters and leaves as a pseudo-scalar (``group.irrep(1, 0)``: reflections flip its sign),
    as the Navier-Stokes equations require; under C(4) it is a scalar.
    """

    def __init__(self, group: Any = "C4", width: int = 8, blocks: int = 2, kernel_size: int = 5,
                 field_scale: float = 1.0, delta_scale: float = 1.0) -> None:
        super().__init__(field_scale, delta_scale)
        self.group = parse_group(group)
        if kernel_size % 2 == 0:
            raise ValueError(f"FluidGCNN: kernel_size must be odd (centred 'same' padding), got {kernel_size}")
        pseudo = pseudo_scalar(self.group)
        options = {"group": self.group, "padding": kernel_size // 2, "padding_mode": "circular"}
        self.lift = LiftingConv2d(1, width, kernel_size, in_rep=pseudo, **options)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.GELU(), GroupConv2d(width, width, kernel_size, **options), nn.GELU(),
                          GroupConv2d(width, width, kernel_size, **options))
            for _ in range(blocks))
        self.head = nn.Sequential(nn.GELU(), GroupConv2d(width, 1, kernel_size, **options), GroupPool("mean", rep=pseudo))

    def net(self, x: Tensor) -> Tensor:
        h = self.lift(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class FluidCNN(IncrementModel):
    """The plain-convolution counterpart of :class:`FluidGCNN` (same blocks, ``width`` channels).

    Not equivariant: a rotated input gives an output that differs from the rotated output.
    """

    def __init__(self, width: int = 16, blocks: int = 2, kernel_size: int = 5, field_scale: float = 1.0,
                 delta_scale: float = 1.0) -> None:
        super().__init__(field_scale, delta_scale)
        if kernel_size % 2 == 0:
            raise ValueError(f"FluidCNN: kernel_size must be odd (centred 'same' padding), got {kernel_size}")
        conv = lambda i, o: nn.Conv2d(i, o, kernel_size, padding=kernel_size // 2, padding_mode="circular")  # noqa: E731
        self.lift = conv(1, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.GELU(), conv(width, width), nn.GELU(), conv(width, width))
                                    for _ in range(blocks))
        self.head = nn.Sequential(nn.GELU(), conv(width, 1))

    def net(self, x: Tensor) -> Tensor:
        h = self.lift(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def _cnn_parameters(width: int, blocks: int, kernel_size: int) -> int:
    k2 = kernel_size**2
    return (k2 * width + width) + blocks * 2 * (k2 * width * width + width) + (k2 * width + 1)


def cnn_width_matching(parameters: int, blocks: int, kernel_size: int) -> int:
    """The CNN width whose parameter count is closest to ``parameters``."""
    k2 = kernel_size**2
    a, b = 2 * blocks * k2, 2 * blocks + 2 * k2 + 1  # parameters ~ a w^2 + b w + 1
    guess = max(1, int((-b + math.sqrt(b * b + 4 * a * max(parameters - 1, 0))) / (2 * a)))
    return min((guess, guess + 1), key=lambda w: abs(_cnn_parameters(w, blocks, kernel_size) - parameters))


def width_matching(build: Callable[[int], nn.Module], parameters: int, largest: int = 4096) -> int:
    """The width ``w`` whose model ``build(w)`` has the parameter count closest to ``parameters``.

    ``build`` must give models whose parameter count grows with the width; they are built on the
    ``meta`` device (shapes only), so the search costs no memory.
    """
    def size(w: int) -> int:
        with torch.device("meta"):
            return count_parameters(build(w))

    low, high = 1, largest
    while low < high:  # the smallest width with at least `parameters`
        mid = (low + high) // 2
        if size(mid) < parameters:
            low = mid + 1
        else:
            high = mid
    return min({max(1, low - 1), low}, key=lambda w: abs(size(w) - parameters))


def build_model(model: str, group: Any = "C4", width: int | None = None, blocks: int | None = None,
                kernel_size: int | None = None, field_scale: float = 1.0, delta_scale: float = 1.0,
                gcnn_width: int = 8, modes: int = 12, multipliers: Sequence[int] = (1, 2, 2)) -> nn.Module:
    """A fluid surrogate by name (``MODELS``), with defaults that work at 64x64.

    Args:
        model: ``"gcnn"`` (:class:`FluidGCNN`), ``"cnn"``/``"cnn-aug"`` (:class:`FluidCNN`),
            ``"gunet"``/``"unet"`` (:class:`~.unet.GUNet`/:class:`~.unet.UNet`),
            ``"gfno"``/``"fno"`` (:class:`~.fno.GFNO`/:class:`~.fno.FNO`).
        group: the equivariant model's group (``"C4"``, ``"D4"``); a plain twin uses it only to
            match parameters.
        width: regular fields of an equivariant model (default ``gcnn_width``), channels of a plain one
            (default: the width whose parameter count is closest to its equivariant twin's at
            ``gcnn_width``; pass ``|G| * gcnn_width`` for equal channels and compute instead).
        blocks: residual blocks (gcnn/cnn: 2), residual blocks per level (gunet/unet: 1) or Fourier
            layers (gfno/fno: 4); ``None`` takes these defaults.
        kernel_size: odd kernel (gcnn/cnn: 5, gunet/unet: 3; unused by the FNOs).
        field_scale, delta_scale: the increment's scales (:class:`~.increment.IncrementModel`).
        modes: Fourier modes per axis of the FNOs (``N >= 2 * modes + 2``).
        multipliers: channels per U-Net level relative to ``width``.

    Returns:
        The model, float32, in training mode.
    """
    scales = {"field_scale": field_scale, "delta_scale": delta_scale}
    if model in ("gcnn", "cnn", "cnn-aug"):
        blocks, kernel_size = blocks or 2, kernel_size or 5
        if model == "gcnn":
            return FluidGCNN(group, width or gcnn_width, blocks, kernel_size, **scales)
        if width is None:
            width = cnn_width_matching(count_parameters(FluidGCNN(group, gcnn_width, blocks, kernel_size)), blocks, kernel_size)
        return FluidCNN(width, blocks, kernel_size, **scales)
    if model in ("gunet", "unet"):
        options = {"multipliers": tuple(multipliers), "blocks": blocks or 1, "kernel_size": kernel_size or 3}
        if model == "gunet":
            return GUNet(group, width or gcnn_width, **options, **scales)
        if width is None:
            target = count_parameters(GUNet(group, gcnn_width, **options))
            width = width_matching(lambda w: UNet(w, **options), target)
        return UNet(width, **options, **scales)
    if model in ("gfno", "fno"):
        options = {"layers": blocks or 4, "modes": modes}
        if model == "gfno":
            return GFNO(group, width or gcnn_width, projection=2 * (width or gcnn_width), **options, **scales)
        if width is None:
            target = count_parameters(GFNO(group, gcnn_width, projection=2 * gcnn_width, **options))
            width = width_matching(lambda w: FNO(w, projection=2 * w, **options), target)
        return FNO(width, projection=2 * width, **options, **scales)
    raise InvalidArgumentError(f"unknown model {model!r}: use one of {', '.join(MODELS)}")
