"""Equivariant layers for point clouds and graphs of points.

Radial bases and cutoffs expand interatomic distances; ``scatter_sum``/``scatter_mean`` and
``radius_graph`` handle graphs in plain torch; ``Gate`` and ``NormActivation`` are e3nn-compatible
nonlinearities; ``MessagePassing`` is the TFN/NequIP convolution (gather -> tensor product with
spherical harmonics -> scatter -> Linear).
"""
from equiscale.nn.points.activation import Activation, moment, normalize2mom
from equiscale.nn.points.batchnorm import BatchNorm
from equiscale.nn.points.cutoff import CosineCutoff, PolynomialCutoff
from equiscale.nn.points.dropout import Dropout
from equiscale.nn.points.extract import Extract, ExtractIr
from equiscale.nn.points.fully_connected import FullyConnectedNet
from equiscale.nn.points.fused import GatherTensorProductScatter
from equiscale.nn.points.gate import Gate
from equiscale.nn.points.graph import edge_pairs, radius_graph
from equiscale.nn.points.grid_activation import S2Activation, SO3Activation
from equiscale.nn.points.identity import Identity
from equiscale.nn.points.message_passing import MessagePassing, uvu_instructions
from equiscale.nn.points.mlp import RadialMLP
from equiscale.nn.points.norm_activation import NormActivation
from equiscale.nn.points.radial import BesselBasis, GaussianBasis
from equiscale.nn.points.scatter import scatter_mean, scatter_sum
from equiscale.nn.points.soft_basis import bessel, soft_one_hot_linspace, soft_unit_step

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
    "edge_pairs",
    "radius_graph",
    "scatter_mean",
    "scatter_sum",
    "uvu_instructions",
    "BatchNorm",
    "Dropout",
    "Extract",
    "ExtractIr",
    "FullyConnectedNet",
    "Identity",
    "moment",
    "soft_one_hot_linspace",
    "soft_unit_step",
    "bessel",
]
__all__ += ["S2Activation", "SO3Activation"]
