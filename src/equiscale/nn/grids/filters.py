"""Filter expansion for group convolutions on grids: one learned kernel -> one kernel per element.

A lifting kernel ``K`` (``(C_out, C_in, k, k)``) expands to ``K[o, g] = chi(g) L_g K[o]`` with
``(L_g K)(p) = K(g^-1 p)`` and ``chi`` a 1-d character of the input (1 for scalars). A group kernel
``Psi`` (``(C_out, C_in, |G|, k, k)``) expands to ``K[o, g, i, h] = L_g Psi[o, i, g^-1 h]``. The
expanded filters have ``(C_out |G|, C_in [|G|], k, k)`` and feed a single ``conv2d``.

This module holds the exact expansion (``C(1), C(2), C(4), D(1), D(2), D(4)``): every ``L_g``
permutes the pixels of the kernel, so the whole expansion is one gather with a precomputed index
(its backward is one scatter-add). Any other ``n`` uses the steerable basis of
:func:`equiscale.kernels.kernel_basis` for the regular representation (Gaussian rings times
harmonics ``J <= frequency_cutoff * r``, cut to the disc ``r <= k / 2``): the only error left is
that of sampling a rotated kernel (and rotated input) on the pixel grid. Elements that map the grid
onto itself (quarter turns, axis flips) are exact to rounding. The defaults (cutoff 1,
``sigma = 0.6``) keep the error of a 5x5 kernel at 45 degrees near 1% on smooth fields; higher
cutoffs add angular detail that the grid aliases (see benchmarks/RESULTS.md).
"""
from __future__ import annotations

from torch import Tensor

from equiscale.groups import CyclicGroup, DihedralGroup
from equiscale.nn.grids._geometry import inverse_products, pixel_permutations

__all__ = [
    "lifting_index",
    "group_index",
    "expand_gather",
]

def lifting_index(group: CyclicGroup | DihedralGroup, size: int) -> Tensor:
    """``index[g, p]`` such that ``K_g.flatten()[p] = K.flatten()[index[g, p]]``; int64 ``(|G|, k*k)``."""
    return pixel_permutations(group, size)


def group_index(group: CyclicGroup | DihedralGroup, size: int) -> Tensor:
    """Index into ``Psi.reshape(..., |G| k k)`` giving ``L_g Psi[g^-1 h]``; int64 ``(|G|, |G| k k)``.

    ``index[g, h * k*k + p] = (g^-1 h) * k*k + perm[g, p]``.
    """
    perm = pixel_permutations(group, size)  # (G, kk)
    table = inverse_products(group)  # (G, G): g^-1 h
    index = table[:, :, None] * (size * size) + perm[:, None, :]
    return index.reshape(group.order, -1)


def expand_gather(weight: Tensor, index: Tensor, size: int, signs: Tensor | None = None) -> Tensor:
    """The exact expansion: ``(C_out, C_in, S)`` weights -> ``(C_out |G|, C_in S / (k k), k, k)``.

    ``weight`` is the learned kernel flattened over its group and pixel axes (``S`` entries),
    ``index`` a :func:`lifting_index` or :func:`group_index`, ``signs`` an optional ``(|G|,)``
    character multiplying each output element's kernel.
    """
    c_out, g = weight.shape[0], index.shape[0]
    expanded = weight[:, :, index]  # (C_out, C_in, G, T)
    if signs is not None:
        expanded = expanded * signs[:, None]
    expanded = expanded.transpose(1, 2)  # (C_out, G, C_in, T)
    return expanded.reshape(c_out * g, -1, size, size)
