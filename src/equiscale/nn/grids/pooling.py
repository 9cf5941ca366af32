"""Pooling and upsampling that keep group-convolution features equivariant.

:class:`GroupPool` pools the group axis, ``(B, C, |G|, H, W) -> (B, C, H, W)``;
:class:`GroupGlobalPool` pools the grid and then the group axis, ``(B, C, |G|, H, W) -> (B, C)``,
invariant features for a classifier's head. The spatial layers
act on the last two axes of any ``[..., H, W]`` tensor (plain fields or ``(B, C, |G|, H, W)``
features) and commute with every rotation and reflection of the grid as long as the windows they
sample stay centred on the field; they check this and raise ValueError otherwise.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equiscale.nn._buffers import set_optional_buffer
from equiscale.nn.grids._geometry import as_pair

__all__ = ["GroupPool", "GroupGlobalPool", "GroupMaxPool2d", "GroupAvgPool2d", "GroupUpsample"]


class GroupPool(nn.Module):
    """Pool the group axis: ``(B, C, |G|, H, W)`` -> ``(B, C, H, W)``.

    ``mode="max"`` or ``"mean"``. With input transforming by the regular representation,
    ``F[:, :, h](p) -> F[:, :, a^-1 h](a^-1 p)``, the output is a scalar field, ``y(p) -> y(a^-1 p)``.

    ``rep``: a 1-d representation ``chi`` (only with ``mode="mean"``) gives instead the projection
    ``y = mean_h chi(h) F[:, :, h]``, which transforms as ``y(p) -> chi(a) y(a^-1 p)``; e.g.
    ``D(4).irrep(1, 0)`` for a pseudo-scalar (such as 2D vorticity) that flips sign under reflections.
    A max over the group axis cannot produce such a field, so ``mode="max"`` with a ``rep`` raises.
    """

    def __init__(self, mode: str = "max", rep: Any = None) -> None:
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"GroupPool: mode must be 'max' or 'mean', got {mode!r}")
        if rep is not None:
            if mode != "mean":
                raise ValueError("GroupPool: a non-trivial output rep needs mode='mean' (a max is not sign-equivariant)")
            if getattr(rep, "dim", None) != 1 or not getattr(rep.group, "is_finite", False):
                raise ValueError(f"GroupPool: rep must be a 1-d representation of a finite group, got {rep!r}")
            signs = rep(rep.group.elements())[:, 0, 0].to(torch.get_default_dtype())
        else:
            signs = None
        self.mode, self.rep = mode, rep
        set_optional_buffer(self, "signs", signs)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, |G|, H, W)`` -> ``(B, C, H, W)``."""
        if x.dim() != 5:
            raise ValueError(f"GroupPool: input must be (batch, channels, |G|, H, W), got shape {tuple(x.shape)}")
        if self.signs is not None:
            if x.shape[2] != self.signs.shape[0]:
                raise ValueError(f"GroupPool: the group axis has size {x.shape[2]}, {self.rep.group.name} has "
                                 f"{self.signs.shape[0]} elements")
            return (x * self.signs.to(x.dtype)[:, None, None]).mean(2)
        return x.amax(2) if self.mode == "max" else x.mean(2)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}" + (f", rep={self.rep.name}" if self.rep is not None else "")


class GroupGlobalPool(nn.Module):
    """Invariant global pooling: ``(B, C, |G|, H, W)`` -> ``(B, C)``.

    A ``spatial`` mean or max over the whole grid, then a ``group`` mean or max over the group axis.
    With input ``F[:, :, h](p) -> F[:, :, a^-1 h](a^-1 p)`` (regular features) both steps are
    invariant, so the output is unchanged by every element: the head of a rotation-invariant
    classifier. ``rep`` (a 1-d representation ``chi``, ``group="mean"`` only) gives instead
    ``mean_h chi(h) ...``, which transforms as ``y -> chi(a) y`` (e.g. a pseudo-scalar).

    Args:
        spatial: ``"mean"`` or ``"max"`` over ``(H, W)``.
        group: ``"mean"`` or ``"max"`` over the group axis (as :class:`GroupPool`).
        rep: optional 1-d representation for a signed mean over the group axis.
    """

    def __init__(self, spatial: str = "mean", group: str = "max", rep: Any = None) -> None:
        super().__init__()
        if spatial not in ("max", "mean"):
            raise ValueError(f"GroupGlobalPool: spatial must be 'max' or 'mean', got {spatial!r}")
        self.spatial = spatial
        self.pool = GroupPool(group, rep=rep)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, |G|, H, W)`` -> ``(B, C)``."""
        if x.dim() != 5:
            raise ValueError(f"GroupGlobalPool: input must be (batch, channels, |G|, H, W), got shape {tuple(x.shape)}")
        y = x.amax((-2, -1)) if self.spatial == "max" else x.mean((-2, -1))
        return self.pool(y[..., None, None])[..., 0, 0]

    def extra_repr(self) -> str:
        return f"spatial={self.spatial!r}, group={self.pool.mode!r}" + (
            f", rep={self.pool.rep.name}" if self.pool.rep is not None else "")


class _SpatialPool(nn.Module):
    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = as_pair(kernel_size, f"{name}: kernel_size")
        self.stride = self.kernel_size if stride is None else as_pair(stride, f"{name}: stride")
        self.padding = as_pair(padding, f"{name}: padding")
        if self.kernel_size[0] != self.kernel_size[1] or self.stride[0] != self.stride[1] or self.padding[0] != self.padding[1]:
            raise ValueError(f"{name}: kernel_size, stride and padding must be equal on both axes (a quarter turn swaps them)")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"{name}: kernel_size and stride must be >= 1")

    def _flat(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        if x.dim() < 3:
            raise ValueError(f"{name}: input must be [..., C, H, W], got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        for size, axis in ((h, "H"), (w, "W")):
            if size + 2 * p < k or (size + 2 * p - k) % s:
                raise ValueError(f"{name}: windows of {k} with stride {s} and padding {p} do not tile {axis}={size} "
                                 f"symmetrically, which breaks equivariance: {axis} + 2*padding - kernel_size must be "
                                 f"divisible by the stride")
        return x.reshape(-1, 1, h, w) if x.dim() == 3 else x.reshape(-1, x.shape[-3], h, w)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size[0]}, stride={self.stride[0]}, padding={self.padding[0]}"


class GroupMaxPool2d(_SpatialPool):
    """Spatial max pooling of ``[..., H, W]`` (e.g. ``(B, C, |G|, H, W)``); commutes with grid rotations.

    ``H + 2 padding - kernel_size`` must be divisible by ``stride`` (default ``kernel_size``).
    """

    def forward(self, x: Tensor) -> Tensor:
        y = F.max_pool2d(self._flat(x), self.kernel_size, self.stride, self.padding)
        return y.reshape(*x.shape[:-2], *y.shape[-2:])


class GroupAvgPool2d(_SpatialPool):
    """Spatial average pooling of ``[..., H, W]``; commutes with grid rotations (same rule as :class:`GroupMaxPool2d`)."""

    def forward(self, x: Tensor) -> Tensor:
        y = F.avg_pool2d(self._flat(x), self.kernel_size, self.stride, self.padding)
        return y.reshape(*x.shape[:-2], *y.shape[-2:])


class GroupUpsample(nn.Module):
    """Upsample ``[..., H, W]`` by an integer factor (``"nearest"`` or ``"bilinear"``, centres aligned).

    Both modes place the new samples symmetrically about the field's centre, so they commute with
    rotations and reflections of the grid.
    """

    def __init__(self, scale_factor: int = 2, mode: str = "nearest") -> None:
        super().__init__()
        if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
            raise ValueError(f"GroupUpsample: scale_factor must be a positive int, got {scale_factor!r}")
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"GroupUpsample: mode must be 'nearest' or 'bilinear', got {mode!r}")
        self.scale_factor, self.mode = scale_factor, mode

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3:
            raise ValueError(f"GroupUpsample: input must be [..., C, H, W], got shape {tuple(x.shape)}")
        flat = x.reshape(-1, 1, *x.shape[-2:])
        options = {"align_corners": False} if self.mode == "bilinear" else {}
        y = F.interpolate(flat, scale_factor=self.scale_factor, mode=self.mode, **options)
        return y.reshape(*x.shape[:-2], *y.shape[-2:])

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}"
