"""The SO(3)/O(3) toolkit: a drop-in for the core of ``e3nn.o3`` (e3nn 0.6 conventions).

``from equiscale import o3`` in e3nn code gives the same names, signatures and numbers.
Beyond e3nn: float64 inputs give float64-accurate results without touching torch's default
dtype, spherical harmonics exist for any degree, and no function changes global state.
"""
from equiscale.o3._rotation import *  # noqa: F401,F403  (names listed in _rotation.__all__)
from equiscale.o3._wigner import *  # noqa: F401,F403  (names listed in _wigner.__all__)
from equiscale.o3._irreps import Irrep, Irreps
from equiscale.o3 import _rotation as _rotation_module, _wigner as _wigner_module
from equiscale.o3._spherical_harmonics import SphericalHarmonics, spherical_harmonics
from equiscale.o3._tensor_product import Instruction, TensorProduct
from equiscale.o3._tp_sub import ElementwiseTensorProduct, FullTensorProduct, FullyConnectedTensorProduct, TensorSquare
from equiscale.o3._linear import Linear
from equiscale.o3._norm import Norm
from equiscale.o3._reduced_tensor_products import ReducedTensorProducts
from equiscale.o3 import irrep
from equiscale.o3._cartesian_tensor import CartesianTensor
from equiscale.o3._spherical_tensor import SphericalTensor
from equiscale.o3._angular import (Legendre, SphericalHarmonicsAlphaBeta, spherical_harmonics_alpha,
                                   spherical_harmonics_alpha_beta)
from equiscale.o3._s2grid import FromS2Grid, ToS2Grid, irfft, rfft, s2_grid, spherical_harmonics_s2_grid
from equiscale.o3._so3grid import SO3Grid

__all__ = [*_rotation_module.__all__, *_wigner_module.__all__, "Irrep", "Irreps",
           "SphericalHarmonics", "spherical_harmonics", "Instruction", "TensorProduct",
           "FullyConnectedTensorProduct", "ElementwiseTensorProduct", "FullTensorProduct",
           "TensorSquare", "Linear", "Norm", "ReducedTensorProducts", "irrep",
           "CartesianTensor", "SphericalTensor"]
__all__ += ["Legendre", "SphericalHarmonicsAlphaBeta", "spherical_harmonics_alpha", "spherical_harmonics_alpha_beta",
            "s2_grid", "spherical_harmonics_s2_grid", "rfft", "irfft", "ToS2Grid", "FromS2Grid", "SO3Grid"]
