"""Bases of steerable kernels: every ``K`` with ``K(g x) = rho_out(g) K(x) rho_in(g)^-1``.

``kernel_basis(group, in_rep, out_rep, kernel_size)`` solves the constraint for the planar groups
``C(n)``, ``D(n)``, ``SO2()``, ``O2()`` and the spatial groups ``SO3()``, ``O3()``, for any
representations (decomposed into irreps), with Gaussian rings (shells) times angular harmonics
and either closed-form intertwiners (``method="analytic"``) or the constraint's nullspace
(``method="numerical"``). Nothing is cached between calls; building a basis takes milliseconds.
"""
from equiscale.kernels._basis import KernelBasis, default_radii, grid_points, kernel_basis
from equiscale.kernels._harmonics import evaluate_harmonics, harmonic_representation, space_dimension
from equiscale.kernels._intertwiners import analytic_intertwiners, numerical_intertwiners

__all__ = [
    "KernelBasis",
    "kernel_basis",
    "grid_points",
    "default_radii",
    "evaluate_harmonics",
    "harmonic_representation",
    "space_dimension",
    "analytic_intertwiners",
    "numerical_intertwiners",
]
