"""Filter expansion for group convolutions on grids: one learned kernel -> one kernel per element.

A lifting kernel ``K`` (``(C_out, C_in, k, k)``) expands to ``K[o, g] = chi(g) L_g K[o]`` with
``(L_g K)(p) = K(g^-1 p)`` and ``chi`` a 1-d character of the input (1 for scalars). A group kernel
``Psi`` (``(C_out, C_in, |G|, k, k)``) expands to ``K[o, g, i, h] = L_g Psi[o, i, g^-1 h]``. The
expanded filters have ``(C_out |G|, C_in [|G|], k, k)`` and feed a single ``conv2d``.

Two ways to apply ``L_g``:

* exact (``C(1), C(2), C(4), D(1), D(2), D(4)``): every ``L_g`` permutes the pixels of the kernel,
  so the whole expansion is one gather with a precomputed index (its backward is one scatter-add);
* steerable basis (any other ``n``): the kernel is a combination of analytic functions
  ``G_j(r) cos(m theta)``, ``G_j(r) sin(m theta)`` (Gaussian rings of radius ``j``, frequencies
  ``m <= frequency_cutoff * j``), cut to the disc ``r <= k / 2``, whose rotated copies are
  evaluated exactly at ``g^-1 p``; the only error left is that of sampling a rotated kernel (and
  rotated input) on the pixel grid. Elements that map the grid onto itself (quarter turns, axis
  flips) are exact to rounding. The defaults (cutoff 1, ``sigma = 0.6``) keep the error of a 5x5
  kernel at 45 degrees near 1% on smooth fields; higher cutoffs add angular detail that the grid
  aliases (see benchmarks/RESULTS-group_conv.md).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from equiscale.groups import CyclicGroup, DihedralGroup
from equiscale.nn.grids._geometry import element_matrices, inverse_products, pixel_permutations

__all__ = [
    "lifting_index",
    "group_index",
    "expand_gather",
    "steerable_basis",
    "expand_lifting_basis",
    "expand_group_basis",
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


def _ring_functions(size: int, frequency_cutoff: float) -> list[tuple[float, int, int]]:
    """The (radius, frequency, kind) of each basis function; kind 0: cos (or m = 0), 1: sin."""
    functions = []
    max_radius = (size - 1) / 2
    for j in range(int(math.floor(max_radius)) + 1):
        top = 0 if j == 0 else int(math.floor(frequency_cutoff * j + 1e-9))
        for m in range(top + 1):
            functions.append((float(j), m, 0))
            if m > 0:
                functions.append((float(j), m, 1))
    return functions


def _sample(functions: list[tuple[float, int, int]], points: Tensor, sigma: float, max_radius: float) -> Tensor:
    """Evaluate the ring functions at ``points`` ``(..., 2)`` -> ``(..., B)`` (float64), zero beyond ``max_radius``."""
    r = points.norm(dim=-1)
    # A rotation-invariant support: without it the corners of the square would cut the rotated kernels.
    window = (r <= max_radius + 1e-9).to(r.dtype)
    theta = torch.atan2(points[..., 1], points[..., 0])
    centre = r < 1e-9
    out = []
    for radius, m, kind in functions:
        ring = torch.exp(-((r - radius) ** 2) / (2 * sigma**2)) * window
        if m == 0:
            out.append(ring)
            continue
        angular = torch.cos(m * theta) if kind == 0 else torch.sin(m * theta)
        out.append(torch.where(centre, torch.zeros_like(r), ring * angular))
    return torch.stack(out, -1)


def steerable_basis(group: CyclicGroup | DihedralGroup, size: int, frequency_cutoff: float = 1.0,
                    sigma: float = 0.6) -> Tensor:
    """Basis functions sampled at ``g^-1 p`` for every element: float64 ``(|G|, B, k, k)``.

    Each function is scaled to unit norm on the identity's grid; functions that vanish on the grid
    are dropped.
    """
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # rows are y, columns x
    points = torch.stack([x, y], -1)  # (k, k, 2)
    matrices = element_matrices(group)  # (G, 2, 2)
    moved = torch.einsum("gab,ija->gijb", matrices, points)  # g^-1 p = M^T p: (G, k, k, 2)
    functions = _ring_functions(size, frequency_cutoff)
    samples = _sample(functions, moved, sigma, size / 2)  # (G, k, k, B)
    norms = samples[0].pow(2).sum((0, 1)).sqrt()  # identity first in elements()
    keep = norms > 1e-6 * norms.max()
    basis = samples[..., keep] / norms[keep]
    return basis.permute(0, 3, 1, 2).contiguous()


def expand_lifting_basis(coefficients: Tensor, basis: Tensor, signs: Tensor | None = None) -> Tensor:
    """``(C_out, C_in, B)`` coefficients and a ``(|G|, B, k, k)`` basis -> ``(C_out |G|, C_in, k, k)``."""
    c_out, c_in, _ = coefficients.shape
    g, _, k, _ = basis.shape
    kernels = torch.einsum("oib,gbp->ogip", coefficients, basis.reshape(g, -1, k * k))
    if signs is not None:
        kernels = kernels * signs[None, :, None, None]
    return kernels.reshape(c_out * g, c_in, k, k)


def expand_group_basis(coefficients: Tensor, basis: Tensor, table: Tensor) -> Tensor:
    """``(C_out, C_in, |G|, B)`` coefficients -> ``(C_out |G|, C_in |G|, k, k)``.

    ``K[o, g, i, h] = sum_b coefficients[o, i, g^-1 h, b] basis[g, b]`` with ``table[g, h] = g^-1 h``.
    """
    c_out, c_in, _, _ = coefficients.shape
    g, _, k, _ = basis.shape
    permuted = coefficients[:, :, table]  # (C_out, C_in, G_out, G_in, B)
    kernels = torch.einsum("oighb,gbp->ogihp", permuted, basis.reshape(g, -1, k * k))
    return kernels.reshape(c_out * g, c_in * g, k, k)
