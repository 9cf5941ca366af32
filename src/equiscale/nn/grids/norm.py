"""Normalisation of group-convolution features ``(B, C, |G|, H, W)`` with statistics shared across
the group axis, so that a rotation (which permutes that axis and moves the grid) commutes with it.

Normalising each ``(channel, element)`` pair on its own would not be equivariant: rotating the
input exchanges the elements, whose statistics differ.
"""
from __future__ import annotations

from torch import Tensor, nn

from equiscale.errors import InvalidArgumentError

__all__ = ["GroupBatchNorm2d", "GroupNorm2d"]


def _check(x: Tensor, channels: int, layer: str) -> None:
    if x.dim() != 5:
        raise InvalidArgumentError(f"{layer}: input must be (batch, channels, |G|, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise InvalidArgumentError(f"{layer}: input has {x.shape[1]} channels (dim 1 of {tuple(x.shape)}), the layer "
                                   f"expects {channels}; features are (batch, channels, |G|, H, W), |G| on its own axis")


class GroupBatchNorm2d(nn.BatchNorm3d):
    """Batch norm over ``(batch, |G|, H, W)`` for each channel: ``(B, C, |G|, H, W)`` -> same shape.

    One mean, variance, scale and shift per channel, shared by all group elements and pixels, so
    ``F[:, :, h](p) -> F[:, :, a^-1 h](a^-1 p)`` commutes with it (in training and eval mode).
    Arguments as ``torch.nn.BatchNorm3d(num_features, ...)``.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        _check(input, self.num_features, "GroupBatchNorm2d")


class GroupNorm2d(nn.GroupNorm):
    """Group norm (Wu and He) of ``(B, C, |G|, H, W)`` features: statistics per sample over each group
    of channels and over ``(|G|, H, W)``; scale and shift per channel. Equivariant like
    :class:`GroupBatchNorm2d`. Arguments as ``torch.nn.GroupNorm(num_groups, num_channels, ...)``.
    """

    def forward(self, input: Tensor) -> Tensor:
        """``(B, C, |G|, H, W)`` -> same shape."""
        _check(input, self.num_channels, "GroupNorm2d")
        return super().forward(input)
