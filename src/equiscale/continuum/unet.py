"""U-Nets for one step of 2D vorticity: :class:`GUNet` (group convolutions) and its plain twin :class:`UNet`.

The layout is PDEArena's modern U-Net (Gupta and Brandstetter 2022), scaled down for CPU budgets:
a lifting convolution to ``width`` channels; ``len(multipliers)`` levels, level ``l`` holding
``width * multipliers[l]`` channels in ``blocks`` pre-norm residual blocks
``x + conv(act(norm(conv(act(norm(x))))))`` (GroupNorm, GELU, a 1x1 convolution on the shortcut when
the width changes); average pooling by 2 between levels on the way down, nearest upsampling by 2
and concatenation with the level's skip on the way up; a final norm, GELU and convolution to one
field. Every convolution pads circularly (the fluid is periodic).

* :class:`GUNet`: every convolution a :class:`~equiscale.nn.grids.GroupConv2d` over regular fields
  of ``group`` (C(4), D(4); any C(n)/D(n) through the steerable kernels, exact on the grid for n in
  {1, 2, 4}), GroupNorm over whole group fibres (:class:`~equiscale.nn.grids.GroupNorm2d`), pooling and
  upsampling applied to every group channel alike. Average pooling by 2 and nearest upsampling by 2
  commute with the quarter turns and reflections of an even grid (the 2x2 blocks map onto 2x2
  blocks), so the model is exactly equivariant when the resolution is divisible by
  ``2 ** (levels - 1)``: ``f(g.w) = g.f(w)``, with the pseudo-scalar sign under reflections.
* :class:`UNet`: the same with ``nn.Conv2d`` and ``nn.GroupNorm``; not equivariant.

Inside the network group features are kept as ``(B, C |G|, H, W)`` (field-major, the layout
``GroupConv2d`` feeds to ``conv2d``); the 5-d view ``(B, C, |G|, H, W)`` is taken for the layers that
need it.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from equiscale.continuum.increment import IncrementModel, parse_group, pseudo_scalar
from equiscale.errors import InvalidArgumentError
from equiscale.nn.grids import GroupAvgPool2d, GroupConv2d, GroupNorm2d, GroupPool, GroupUpsample, LiftingConv2d

__all__ = ["GUNet", "UNet"]


class _GroupConv(nn.Module):
    """:class:`GroupConv2d` on field-major ``(B, C |G|, H, W)`` features."""

    def __init__(self, in_fields: int, out_fields: int, kernel_size: int, group: Any) -> None:
        super().__init__()
        self.order = group.order
        self.conv = GroupConv2d(in_fields, out_fields, kernel_size, group, padding=kernel_size // 2,
                                padding_mode="circular")

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        return self.conv(x.view(b, -1, self.order, h, w)).flatten(1, 2)


class _GroupNorm(nn.Module):
    """:class:`GroupNorm2d` (statistics and affine shared by a field's |G| channels) on ``(B, C |G|, H, W)``."""

    def __init__(self, groups: int, fields: int, order: int) -> None:
        super().__init__()
        self.order = order
        self.norm = GroupNorm2d(groups, fields)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        return self.norm(x.view(b, -1, self.order, h, w)).view(b, -1, h, w)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, unet: "_UNetBase") -> None:
        super().__init__()
        self.norm1, self.conv1 = unet.make_norm(cin), unet.make_conv(cin, cout, unet.kernel_size)
        self.norm2, self.conv2 = unet.make_norm(cout), unet.make_conv(cout, cout, unet.kernel_size)
        self.skip = unet.make_conv(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        return self.conv2(self.act(self.norm2(h))) + self.skip(x)


class _UNetBase(IncrementModel):
    """The shared U-Net; subclasses say what a convolution, a norm, the lift and the head are."""

    def __init__(self, width: int, multipliers: Sequence[int], blocks: int, kernel_size: int, norm_groups: int,
                 field_scale: float, delta_scale: float) -> None:
        super().__init__(field_scale, delta_scale)
        name = type(self).__name__
        multipliers = tuple(multipliers)
        for value, what in ((width, "width"), (blocks, "blocks"), (norm_groups, "norm_groups"), *((m, "multipliers") for m in multipliers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name}: {what} must be positive ints, got {value!r}")
        if not multipliers:
            raise InvalidArgumentError(f"{name}: multipliers must name at least one level")
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise InvalidArgumentError(f"{name}: kernel_size must be odd (centred 'same' padding), got {kernel_size}")
        self.width, self.multipliers, self.blocks = width, multipliers, blocks
        self.kernel_size, self.norm_groups = kernel_size, norm_groups
        channels = [width * m for m in multipliers]
        self.lift = self.make_lift(channels[0])
        self.down = nn.ModuleList()
        previous = channels[0]
        for c in channels:
            self.down.append(nn.Sequential(*(_ResBlock(previous if i == 0 else c, c, self) for i in range(blocks))))
            previous = c
        self.middle = _ResBlock(previous, previous, self)
        self.up = nn.ModuleList()
        for c in reversed(channels):
            self.up.append(nn.Sequential(*(_ResBlock(previous + c if i == 0 else c, c, self) for i in range(blocks))))
            previous = c
        self.pool, self.upsample = GroupAvgPool2d(2), GroupUpsample(2, "nearest")
        self.head = nn.Sequential(self.make_norm(channels[0]), nn.GELU(), *self.make_head(channels[0]))

    # --- what subclasses provide ----------------------------------------------------------------
    def make_conv(self, cin: int, cout: int, kernel_size: int) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    def make_norm(self, channels: int) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    def make_lift(self, channels: int) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    def make_head(self, channels: int) -> list[nn.Module]:  # pragma: no cover - overridden
        raise NotImplementedError

    # --- the network ----------------------------------------------------------------------------
    def check_grid(self, height: int, width: int) -> None:
        """Square, divisible by ``2 ** (levels - 1)``, and the coarsest level no smaller than the kernel."""
        super().check_grid(height, width)
        halvings = len(self.multipliers) - 1
        if height % 2**halvings or height // 2**halvings < self.kernel_size:
            raise InvalidArgumentError(
                f"{type(self).__name__}: the resolution {height} must be divisible by {2**halvings} ({halvings} "
                f"halvings for {halvings + 1} levels) and leave at least kernel_size={self.kernel_size} points "
                f"at the coarsest level")

    def net(self, x: Tensor) -> Tensor:
        h = self.lift(x)
        skips = []
        for level, blocks in enumerate(self.down):
            if level:
                h = self.pool(h)
            h = blocks(h)
            skips.append(h)
        h = self.middle(h)
        for level, blocks in enumerate(self.up):
            if level:
                h = self.upsample(h)
            h = blocks(torch.cat([h, skips.pop()], dim=1))
        return self.head(h)


class GUNet(_UNetBase):
    """U-Net of group convolutions for one step of vorticity, exactly C(4)/D(4)-equivariant.

    Args:
        group: ``"C4"``, ``"D4"``, or ``C(n)``/``D(n)`` (n not in {1, 2, 4} through steerable kernels,
            exact only for the quarter turns and flips among its elements).
        width: regular fields at the first level (``width * |G|`` channels).
        multipliers: fields per level relative to ``width``; ``len(multipliers) - 1`` halvings.
        blocks: residual blocks per level (down and up).
        kernel_size: odd kernel of every convolution.
        norm_groups: GroupNorm groups (``gcd(norm_groups, fields)`` at each width), over whole fibres.
        field_scale, delta_scale: as :class:`~.increment.IncrementModel`.

    Symmetry: vorticity ``w(p) -> chi(a) w(a^-1 p)`` in and out (``chi`` the sign character under
    D(n), 1 under C(n)); hidden features by the regular representation.
    """

    def __init__(self, group: Any = "C4", width: int = 8, multipliers: Sequence[int] = (1, 2, 2), blocks: int = 1,
                 kernel_size: int = 3, norm_groups: int = 8, field_scale: float = 1.0,
                 delta_scale: float = 1.0) -> None:
        self._group = parse_group(group)
        super().__init__(width, multipliers, blocks, kernel_size, norm_groups, field_scale, delta_scale)
        self.group = self._group

    def make_conv(self, cin: int, cout: int, kernel_size: int) -> nn.Module:
        return _GroupConv(cin, cout, kernel_size, self._group)

    def make_norm(self, channels: int) -> nn.Module:
        return _GroupNorm(math.gcd(self.norm_groups, channels), channels, self._group.order)

    def make_lift(self, channels: int) -> nn.Module:
        k = self.kernel_size
        return nn.Sequential(LiftingConv2d(1, channels, k, self._group, padding=k // 2, padding_mode="circular",
                                           in_rep=pseudo_scalar(self._group)), nn.Flatten(1, 2))

    def make_head(self, channels: int) -> list[nn.Module]:
        k, order = self.kernel_size, self._group.order
        return [nn.Unflatten(1, (channels, order)),
                GroupConv2d(channels, 1, k, self._group, padding=k // 2, padding_mode="circular"),
                GroupPool("mean", rep=pseudo_scalar(self._group))]


class UNet(_UNetBase):
    """The plain U-Net with the layout of :class:`GUNet` (``width`` channels at the first level).

    Args:
        width: channels at the first level; :func:`~.models.build_model` by default matches the
            parameters of the G-U-Net, ``width = |G| * gunet_width`` gives equal channels (and compute).
        multipliers, blocks, kernel_size, norm_groups, field_scale, delta_scale: as :class:`GUNet`.

    Not equivariant under rotations.
    """

    def __init__(self, width: int = 16, multipliers: Sequence[int] = (1, 2, 2), blocks: int = 1,
                 kernel_size: int = 3, norm_groups: int = 8, field_scale: float = 1.0,
                 delta_scale: float = 1.0) -> None:
        super().__init__(width, multipliers, blocks, kernel_size, norm_groups, field_scale, delta_scale)

    def make_conv(self, cin: int, cout: int, kernel_size: int) -> nn.Module:
        return nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, padding_mode="circular")

    def make_norm(self, channels: int) -> nn.Module:
        return nn.GroupNorm(math.gcd(self.norm_groups, channels), channels)

    def make_lift(self, channels: int) -> nn.Module:
        return self.make_conv(1, channels, self.kernel_size)

    def make_head(self, channels: int) -> list[nn.Module]:
        return [self.make_conv(channels, 1, self.kernel_size)]
