"""One-step surrogates of 2D vorticity: ``w(t) -> w(t + dt)``, each a residual network on a periodic grid.

* :class:`FluidGCNN`: lifting convolution, residual group-convolution blocks, a projection back to
  one field; C(4) or D(4), circular padding. Exactly equivariant: ``f(g.w) = g.f(w)`` for every
  90-degree rotation (and, for D(4), reflection, with the pseudo-scalar sign: a reflected flow has
  ``-w`` reflected), to float rounding.
* :class:`FluidCNN`: the same network with plain convolutions (the baseline, and with random
  rotations of the data the "augmented CNN"); :func:`cnn_width_matching` picks its width so that it
  has about as many parameters as a given G-CNN.

Inputs and outputs are ``(B, H, W)`` (or ``(B, 1, H, W)``, kept as given). Both models predict the
increment: ``f(w) = w + delta_scale * net(w / field_scale)``, with two scalar scales from the data
(scalars keep equivariance).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from equiscale.groups import C, D
from equiscale.nn.grids import GroupConv2d, GroupPool, LiftingConv2d
from equiscale.train.metrics import count_parameters

__all__ = ["FluidGCNN", "FluidCNN", "build_model", "count_parameters", "cnn_width_matching", "parse_group"]


def parse_group(name: Any) -> Any:
    """``"C4"``/``"D4"`` (or a group object) -> ``C(4)``/``D(4)``."""
    if not isinstance(name, str):
        return name
    text = name.strip().upper().replace("(", "").replace(")", "")
    if len(text) >= 2 and text[0] in "CD" and text[1:].isdigit():
        return (C if text[0] == "C" else D)(int(text[1:]))
    raise ValueError(f"unknown group {name!r}: use C4 or D4 (or Cn / Dn)")



class _Increment(nn.Module):
    """``w -> w + delta_scale * net(w / field_scale)`` over ``(B, H, W)`` or ``(B, 1, H, W)`` fields."""

    def __init__(self, field_scale: float, delta_scale: float) -> None:
        super().__init__()
        self.register_buffer("field_scale", torch.tensor(float(field_scale)))
        self.register_buffer("delta_scale", torch.tensor(float(delta_scale)))

    def net(self, x: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, w: Tensor) -> Tensor:
        """``(B, H, W)`` or ``(B, 1, H, W)`` vorticity at t -> the same shape at t + dt."""
        squeeze = w.dim() == 3
        if squeeze:
            w = w[:, None]
        if w.dim() != 4 or w.shape[1] != 1:
            raise ValueError(f"{type(self).__name__}: vorticity must be (B, H, W) or (B, 1, H, W), got {tuple(w.shape)}")
        if w.shape[-1] != w.shape[-2]:
            raise ValueError(f"{type(self).__name__}: the field is {w.shape[-2]}x{w.shape[-1]}, not square: "
                             f"90-degree rotations need H == W")
        out = w + self.delta_scale.to(w.dtype) * self.net(w / self.field_scale.to(w.dtype))
        return out[:, 0] if squeeze else out


class FluidGCNN(_Increment):
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
        pseudo = self.group.irrep(1, 0) if self.group.name.startswith("D") else None
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


class FluidCNN(_Increment):
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


def build_model(model: str, group: Any = "C4", width: int | None = None, blocks: int = 2, kernel_size: int = 5,
                field_scale: float = 1.0, delta_scale: float = 1.0, gcnn_width: int = 8) -> nn.Module:
    """``"gcnn"`` -> :class:`FluidGCNN` (``width`` regular fields, default ``gcnn_width``);
    ``"cnn"``/``"cnn-aug"`` -> :class:`FluidCNN` with ``width`` channels, by default as many as give
    the parameter count of the G-CNN of width ``gcnn_width``."""
    scales = {"field_scale": field_scale, "delta_scale": delta_scale}
    if model == "gcnn":
        return FluidGCNN(group, width or gcnn_width, blocks, kernel_size, **scales)
    if model in ("cnn", "cnn-aug"):
        if width is None:
            width = cnn_width_matching(count_parameters(FluidGCNN(group, gcnn_width, blocks, kernel_size)), blocks, kernel_size)
        return FluidCNN(width, blocks, kernel_size, **scales)
    raise ValueError(f"unknown model {model!r}: use gcnn, cnn or cnn-aug")
