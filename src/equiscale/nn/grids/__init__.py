"""Group-equivariant layers on 2D grids (C(n), D(n)): features ``(batch, channels, |G|, H, W)``.

``LiftingConv2d``  ``(B, C_in, H, W)`` -> ``(B, C_out, |G|, H, W)``
``GroupConv2d``    ``(B, C_in, |G|, H, W)`` -> ``(B, C_out, |G|, H, W)``
``GroupPool``      pools the group axis -> ``(B, C, H, W)`` (max, mean, or a 1-d character)
``GroupGlobalPool`` pools the grid and the group axis -> ``(B, C)``, invariant
``GroupBatchNorm2d``, ``GroupNorm2d``            statistics shared across the group axis
``GroupMaxPool2d``, ``GroupAvgPool2d``, ``GroupUpsample``   spatial pooling and upsampling

Steerable layers (any representation of C(n), D(n), SO(2), O(2) in 2D, SO(3), O(3) in 3D) work on
``(batch, field_type.size, H, W[, D])`` features described by a :class:`FieldType`:
``SteerableConv2d``, ``SteerableConv3d`` (kernels from :func:`equiscale.kernels.kernel_basis`) and
``SteerableSequential`` (checks the field types between layers), ``NormNonlinearity``,
``GatedNonlinearity``, ``PointwiseNonlinearity`` and ``SteerableBatchNorm``.

A group element ``a`` acts on features by ``F[:, :, h](p) -> F[:, :, a^-1 h](a^-1 p)``, i.e.
``equiscale.testing.GridField(group.regular_representation(), axis=-3)``. C(n) and D(n) with n in
{1, 2, 4} are exact on the square grid; other n rotate the kernels through a steerable basis.
"""
from equiscale.nn.grids.conv import GroupConv2d, LiftingConv2d
from equiscale.nn.grids.field_type import FieldType
from equiscale.nn.grids.steerable import SteerableConv2d, SteerableConv3d, SteerableSequential
from equiscale.nn.grids.steerable_nonlinear import GatedNonlinearity, NormNonlinearity, PointwiseNonlinearity
from equiscale.nn.grids.steerable_norm import SteerableBatchNorm
from equiscale.nn.grids.norm import GroupBatchNorm2d, GroupNorm2d
from equiscale.nn.grids.pooling import GroupAvgPool2d, GroupGlobalPool, GroupMaxPool2d, GroupPool, GroupUpsample

__all__ = [
    "LiftingConv2d",
    "GroupConv2d",
    "GroupPool",
    "GroupGlobalPool",
    "GroupBatchNorm2d",
    "GroupNorm2d",
    "GroupMaxPool2d",
    "GroupAvgPool2d",
    "GroupUpsample",
    "FieldType",
    "SteerableConv2d",
    "SteerableConv3d",
    "SteerableSequential",
    "NormNonlinearity",
    "GatedNonlinearity",
    "PointwiseNonlinearity",
    "SteerableBatchNorm",
]
