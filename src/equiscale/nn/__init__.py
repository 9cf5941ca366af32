"""Equivariant layers: ``nn.points`` for point clouds and graphs (``nn.grids`` for fields on grids).

The names of each subpackage are re-exported here explicitly, one import line per subpackage.
"""
from equiscale.nn.points import (
    Activation,
    BesselBasis,
    CosineCutoff,
    GatherTensorProductScatter,
    Gate,
    GaussianBasis,
    MessagePassing,
    NormActivation,
    PolynomialCutoff,
    RadialMLP,
    normalize2mom,
    radius_graph,
    scatter_mean,
    scatter_sum,
    uvu_instructions,
)
from equiscale.nn.grids import (
    GroupAvgPool2d,
    GroupBatchNorm2d,
    GroupConv2d,
    GroupMaxPool2d,
    GroupNorm2d,
    GroupPool,
    GroupUpsample,
    LiftingConv2d,
)

__all__ = [
    "Activation",
    "BesselBasis",
    "CosineCutoff",
    "GatherTensorProductScatter",
    "Gate",
    "GaussianBasis",
    "MessagePassing",
    "NormActivation",
    "PolynomialCutoff",
    "RadialMLP",
    "normalize2mom",
    "radius_graph",
    "scatter_mean",
    "scatter_sum",
    "uvu_instructions",
    "GroupAvgPool2d",
    "GroupBatchNorm2d",
    "GroupConv2d",
    "GroupMaxPool2d",
    "GroupNorm2d",
    "GroupPool",
    "GroupUpsample",
    "LiftingConv2d",
]
