"""``kernel_basis``: every kernel ``K(g x) = rho_out(g) K(x) rho_in(g)^-1`` as a linear combination.

The representations are decomposed into irreps, ``Q rho Q^T = blockdiag(psi_1, psi_2, ...)``
(:meth:`Representation.decompose`). Between an input irrep ``psi_b`` and an output irrep ``psi_a``
the kernels are (Wigner-Eckart)

    K_ab(x) = R_r(|x|) sum_m W[:, :, m] Y_J,m(x / |x|)

with ``R_r(rho) = exp(-(rho - r)^2 / (2 sigma^2))`` a Gaussian ring (2D) or shell (3D) of radius
``r``, ``Y_J`` an angular harmonic of frequency (degree) ``J <= min(frequency_cutoff * r,
max_frequency)`` (only ``J = 0`` at ``r = 0``) and ``W`` an intertwiner ``Y_J (x) psi_b -> psi_a`` (:mod:`._intertwiners`).
The basis of ``K`` is ``Q_out^T K_ab Q_in`` over all blocks, rings, harmonics and intertwiners.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from equiscale.groups import Representation
from equiscale.kernels._harmonics import evaluate_harmonics, space_dimension
from equiscale.kernels._intertwiners import analytic_intertwiners, numerical_intertwiners

__all__ = ["KernelBasis", "kernel_basis", "grid_points", "default_radii"]

_METHODS = {"analytic": analytic_intertwiners, "numerical": numerical_intertwiners}
_MAX_ENTRIES = 2**28  # 2 GB of float64: far beyond any single pair of fields


@dataclass(frozen=True)
class _Block:
    """Kernels from input irrep ``b`` to output irrep ``a`` with one ring and one harmonic."""

    out_slice: slice
    in_slice: slice
    radius: float
    J: int
    intertwiners: Tensor  # (count, d_a, d_b, d_J)
    label: str


def grid_points(kernel_size: int, dim: int) -> Tensor:
    """The kernel's sample points in (x, y[, z]) coordinates, float64 ``(k^dim, dim)``.

    They are listed in array order of a ``(k, k)`` (rows y, columns x) or ``(k, k, k)`` (z, y, x)
    kernel, so ``basis(grid_points(k, d))`` reshapes to a convolution filter. Pixel centres are at
    ``index - (k - 1) / 2``.
    """
    coords = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    grids = torch.meshgrid(*([coords] * dim), indexing="ij")  # array order: (z,) y, x
    return torch.stack([grids[dim - 1 - axis].reshape(-1) for axis in range(dim)], -1)


def default_radii(kernel_size: int) -> list[float]:
    """Rings at ``0, 1, ..., (k - 1) / 2`` pixels."""
    return [float(r) for r in range(int(math.floor((kernel_size - 1) / 2)) + 1)]


class KernelBasis:
    """A basis of steerable kernels, callable on points.

    ``basis(points)`` with ``points`` ``(n, d)`` (float64 recommended) returns
    ``(len(basis), n, out_rep.dim, in_rep.dim)``; every element satisfies
    ``K(g x) = rho_out(g) K(x) rho_in(g)^-1``. Points beyond ``support`` (if set) give zero, so a
    grid kernel has a round support that rotations keep.
    """

    def __init__(self, group: Any, in_rep: Representation, out_rep: Representation, blocks: list[_Block],
                 q_in: Tensor, q_out: Tensor, sigma: float, support: float | None,
                 starved: list[tuple[int, str, int]], reached: set[int]) -> None:
        self.group, self.in_rep, self.out_rep = group, in_rep, out_rep
        self._blocks, self._q_in, self._q_out = blocks, q_in, q_out
        self.sigma, self.support = sigma, support
        # Output irreps (index in out_rep's decomposition, name, frequency needed) that receive no kernel
        # although a higher frequency would give them one; and the indices that do receive kernels.
        self.starved_outputs = starved
        self.reached_outputs = reached
        self.descriptions = [block.label for block in blocks for _ in range(block.intertwiners.shape[0])]

    def __len__(self) -> int:
        return len(self.descriptions)

    def __repr__(self) -> str:
        return (f"KernelBasis({self.group.name}: {self.in_rep.name} -> {self.out_rep.name}, "
                f"{len(self)} kernels, sigma={self.sigma}, support={self.support})")

    def __call__(self, points: Tensor) -> Tensor:
        points = torch.as_tensor(points)
        d = space_dimension(self.group)
        if points.dim() != 2 or points.shape[1] != d or not points.is_floating_point():
            raise ValueError(f"KernelBasis: points must be a float tensor (n, {d}), got {tuple(points.shape)}")
        dtype, device = points.dtype, points.device
        n = points.shape[0]
        entries = len(self) * n * self._q_out.shape[0] * self._q_in.shape[0]
        if entries > _MAX_ENTRIES:
            raise ValueError(
                f"KernelBasis: {len(self)} kernels of {self.out_rep.dim}x{self.in_rep.dim} at {n} points need {entries:.2e} "
                f"numbers; build one basis per pair of field representations instead (as SteerableConv2d/3d do with a "
                f"FieldType) rather than one for the direct sum of many fields")
        block_kernels = torch.zeros(len(self), n, self._q_out.shape[0], self._q_in.shape[0], dtype=dtype, device=device)
        r = points.norm(dim=-1)
        window = torch.ones_like(r) if self.support is None else (r <= self.support + 1e-9).to(dtype)
        harmonics: dict[int, Tensor] = {}
        start = 0
        for block in self._blocks:
            if block.J not in harmonics:
                harmonics[block.J] = evaluate_harmonics(self.group, block.J, points)
            ring = torch.exp(-((r - block.radius) ** 2) / (2 * self.sigma**2)) * window
            w = block.intertwiners.to(dtype=dtype, device=device)
            angular = harmonics[block.J] * ring[:, None]  # (n, d_J)
            values = (w.reshape(-1, w.shape[-1]) @ angular.T).reshape(*w.shape[:3], n).permute(0, 3, 1, 2)
            stop = start + w.shape[0]
            block_kernels[start:stop, :, block.out_slice, block.in_slice] = values
            start = stop
        q_out, q_in = self._q_out.to(dtype=dtype, device=device), self._q_in.to(dtype=dtype, device=device)
        return q_out.T @ block_kernels @ q_in

    def on_grid(self, kernel_size: int) -> Tensor:
        """The basis sampled on a ``k^d`` grid: float64 ``(len, out.dim, in.dim, k, k[, k])`` (array order)."""
        d = space_dimension(self.group)
        values = self(grid_points(kernel_size, d))  # (len, k^d, out, in)
        return values.permute(0, 2, 3, 1).reshape(len(self), self.out_rep.dim, self.in_rep.dim, *([kernel_size] * d))


def _decompose(rep: Representation, decompositions: dict | None) -> tuple[list[Representation], Tensor]:
    """``rep.decompose()``, reusing the caller's ``decompositions`` (keyed by object id) when given."""
    if rep.irrep_id is not None:
        return [rep], torch.eye(rep.dim, dtype=torch.float64)
    if decompositions is None:
        return rep.decompose()
    key = id(rep)
    if key not in decompositions:
        decompositions[key] = (rep, rep.decompose())  # the rep is kept so that its id stays unique
    return decompositions[key][1]


def _frequency(irrep: Representation, dim: int) -> int:
    """The degree ``l`` (3D) or rotation frequency (2D) of an irrep: its first or last id."""
    return irrep.irrep_id[0] if dim == 3 else irrep.irrep_id[-1]


def kernel_basis(group: Any, in_rep: Representation, out_rep: Representation, kernel_size: int | None = None, *,
                 radii: Sequence[float] | None = None, sigma: float = 0.6, frequency_cutoff: float = 2.0,
                 max_frequency: int | None = None, support: float | None = None, method: str = "analytic",
                 strict: bool = True, decompositions: dict | None = None) -> KernelBasis:
    """A basis of kernels ``K(g x) = rho_out(g) K(x) rho_in(g)^-1`` on ``R^2`` or ``R^3``.

    Args:
        group: ``C(n)``, ``D(n)``, ``SO2()``, ``O2()`` (2D) or ``SO3()``, ``O3()`` (3D).
        in_rep, out_rep: representations of ``group`` (any: they are decomposed into irreps).
        kernel_size: sets ``radii = 0, 1, ..., (k - 1) / 2`` and ``support = k / 2`` unless given.
        radii: ring (shell) radii; ``sigma`` their Gaussian width.
        frequency_cutoff, max_frequency: harmonics of frequency (degree)
            ``J <= min(frequency_cutoff * r, max_frequency)`` on ring ``r`` (only ``J = 0`` at ``r = 0``;
            ``max_frequency=None``: no cap). Sampled on a pixel grid, frequencies above the largest
            radius alias and cost accuracy under rotations that are not grid symmetries (the grid
            layers cap them there by default).
        method: ``"analytic"`` (Clebsch-Gordan / complex products) or ``"numerical"`` (nullspace of
            the constraint); they span the same kernels.
        strict: raise ValueError when no kernel exists, naming the frequency needed when a larger
            kernel (higher frequencies) would give one. Output irreps that receive no kernel while
            others do (a band-limited regular field) are listed in ``basis.starved_outputs``.
        decompositions: optional dict the caller keeps to reuse decompositions of the same
            representation objects across calls (the layers pass one per layer).
    """
    dim = space_dimension(group)
    for rep, side in ((in_rep, "in_rep"), (out_rep, "out_rep")):
        if not isinstance(rep, Representation):
            raise ValueError(f"kernel_basis: {side} must be an equiscale.groups.Representation, got {rep!r}")
        if rep.group != group:
            raise ValueError(f"kernel_basis: {side} is a representation of {rep.group.name}, the kernel's group is "
                             f"{group.name}")
    if method not in _METHODS:
        raise ValueError(f"kernel_basis: method must be one of {sorted(_METHODS)}, got {method!r}")
    if radii is None:
        if kernel_size is None:
            raise ValueError("kernel_basis: give kernel_size or radii")
        radii = default_radii(kernel_size)
    if support is None and kernel_size is not None:
        support = kernel_size / 2
    if not radii or min(radii) < 0 or sigma <= 0 or frequency_cutoff < 0:
        raise ValueError(f"kernel_basis: need non-negative radii, sigma > 0, frequency_cutoff >= 0; got radii={radii}, "
                         f"sigma={sigma}, frequency_cutoff={frequency_cutoff}")
    solve = _METHODS[method]

    def allowed(r: float) -> int:
        top = 0 if r < 1e-9 else int(math.floor(frequency_cutoff * r + 1e-9))
        return top if max_frequency is None else min(top, max_frequency)

    in_irreps, q_in = _decompose(in_rep, decompositions)
    out_irreps, q_out = _decompose(out_rep, decompositions)
    j_allowed = max(allowed(r) for r in radii)
    blocks: list[_Block] = []
    starved: list[tuple[int, str, int]] = []
    reached_outputs: set[int] = set()
    cache: dict[tuple, Tensor] = {}
    out_offset = 0
    for index, a in enumerate(out_irreps):
        reached, needed = False, None
        in_offset = 0
        for b in in_irreps:
            bound = max(j_allowed, _frequency(a, dim) + _frequency(b, dim))
            for J in range(bound + 1):
                key = (a.irrep_id, b.irrep_id, J)
                if key not in cache:
                    cache[key] = solve(group, J, b, a)
                w = cache[key]
                if w.shape[0] == 0:
                    continue
                if J > j_allowed:
                    needed = J if needed is None else min(needed, J)
                    continue
                reached = True
                for r in radii:
                    if J <= allowed(r):
                        blocks.append(_Block(slice(out_offset, out_offset + a.dim), slice(in_offset, in_offset + b.dim),
                                             float(r), J, w, f"{b.name} -> {a.name}, J={J}, r={r:g}"))
            in_offset += b.dim
        if reached:
            reached_outputs.add(index)
        elif needed is not None:
            starved.append((index, a.name, needed))
        out_offset += a.dim
    basis = KernelBasis(group, in_rep, out_rep, blocks, q_in, q_out, sigma, support, starved, reached_outputs)
    if strict and len(basis) == 0:
        if starved:
            _, name, needed = starved[0]
            raise ValueError(
                f"kernel_basis: no kernel maps {in_rep.name} to {out_rep.name} at these frequencies: the output irrep "
                f"{name} needs angular frequency {needed}, but radii up to {max(radii):g} with frequency_cutoff "
                f"{frequency_cutoff:g} {'' if max_frequency is None else f'and max_frequency {max_frequency} '}allow "
                f"at most {j_allowed}; use a larger kernel_size (or raise frequency_cutoff / max_frequency)")
        raise ValueError(f"kernel_basis: no {group.name}-equivariant kernel maps {in_rep.name} to {out_rep.name}")
    return basis
