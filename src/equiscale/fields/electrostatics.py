"""Electrostatics on a periodic cube: random charge densities and their electric fields, spectrally.

    laplacian(phi) = -rho,   E = -grad(phi)        (units with epsilon_0 = 1)

Grid convention (as everywhere in equiscale): a field ``[..., R, R, R]`` samples ``(z, y, x)`` on
the axes ``(D, H, W)``, spacing ``h = L / R``; point ``(i_z, i_y, i_x)`` sits at
``(i - (R - 1) / 2) h`` on each axis, so the grid is symmetric about the centre of the box. A
vector field is ``[..., 3, R, R, R]`` with ``(E_x, E_y, E_z)`` on the channel axis. A rotation
``R`` acts as ``(R.E)(p) = R E(R^-1 p)`` (:class:`equiscale.testing.GridField` with the SO(3)
irrep 1, ``axis=-4``, ``ndim=3``); the 24 rotations of the cube map the grid onto itself and
:func:`electric_field` commutes with them to rounding for any input (derivatives drop the Nyquist
wavenumber of even grids).

A periodic box must be neutral: the mean of ``rho`` (its ``k = 0`` mode) is dropped by the solve.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["random_charge_density", "gaussian_charges", "electric_field", "potential", "grid_coordinates"]


def _check_box(box_size: Any, where: str) -> float:
    if isinstance(box_size, bool) or not isinstance(box_size, (int, float)) or not (
            math.isfinite(box_size) and box_size > 0):
        raise ValueError(f"{where}: box_size must be a positive number, got {box_size!r}")
    return float(box_size)


def _check_density(rho: Any, where: str) -> None:
    if not isinstance(rho, Tensor) or not rho.is_floating_point():
        raise ValueError(f"{where}: rho must be a floating-point torch tensor [..., R, R, R]")
    if rho.dim() < 3 or not rho.shape[-1] == rho.shape[-2] == rho.shape[-3]:
        raise ValueError(f"{where}: rho must be a cube [..., R, R, R] (axes z, y, x), got shape {tuple(rho.shape)}")
    if rho.shape[-1] < 2:
        raise ValueError(f"{where}: rho needs at least 2 points per side, got {tuple(rho.shape[-3:])}")
    if not torch.isfinite(rho).all():
        raise ValueError(f"{where}: rho contains NaN or infinite values")


def grid_coordinates(resolution: int, box_size: float = 1.0, dtype: torch.dtype = torch.float64) -> Tensor:
    """The centred coordinates ``(i - (R - 1) / 2) * L / R`` of one axis, ``(R,)``."""
    return (torch.arange(resolution, dtype=dtype) - (resolution - 1) / 2) * (box_size / resolution)


def _wavenumbers(n: int, box_size: float, dtype: torch.dtype, device: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(kz, ky, kx, inverse k^2)`` broadcastable over the rfftn layout ``(n, n, n // 2 + 1)``;
    the derivative wavenumbers have the Nyquist entry of an even ``n`` set to zero."""
    scale = 2 * math.pi / box_size
    full = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=device)
    half = torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype, device=device)
    k2 = (full[:, None, None] ** 2 + full[None, :, None] ** 2 + half[None, None, :] ** 2) * scale**2
    inverse = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
    if n % 2 == 0:
        full = torch.where(full.abs() == n // 2, torch.zeros_like(full), full)
        half = torch.where(half.abs() == n // 2, torch.zeros_like(half), half)
    return full[:, None, None] * scale, full[None, :, None] * scale, half[None, None, :] * scale, inverse


def potential(rho: Tensor, box_size: float = 1.0) -> Tensor:
    """The periodic potential ``phi`` with ``laplacian(phi) = -rho`` and zero mean, ``(..., R, R, R)``."""
    _check_density(rho, "potential")
    box_size = _check_box(box_size, "potential")
    n = rho.shape[-1]
    *_, inverse = _wavenumbers(n, box_size, rho.dtype, rho.device)
    return torch.fft.irfftn(torch.fft.rfftn(rho, dim=(-3, -2, -1)) * inverse, s=(n, n, n), dim=(-3, -2, -1))


def electric_field(rho: Tensor, box_size: float = 1.0) -> Tensor:
    """The field ``E = -grad(phi)``, ``laplacian(phi) = -rho``, of a periodic charge density.

    ``rho``: ``(..., R, R, R)`` on the axes (z, y, x) of a periodic cube of side ``box_size``.
    Returns ``(..., 3, R, R, R)`` with ``(E_x, E_y, E_z)`` on axis ``-4``, same dtype and device;
    differentiable. The mean of ``rho`` is dropped (a periodic box is neutral).
    """
    _check_density(rho, "electric_field")
    box_size = _check_box(box_size, "electric_field")
    n = rho.shape[-1]
    kz, ky, kx, inverse = _wavenumbers(n, box_size, rho.dtype, rho.device)
    phi = torch.fft.rfftn(rho, dim=(-3, -2, -1)) * inverse
    components = [torch.fft.irfftn(-1j * k * phi, s=(n, n, n), dim=(-3, -2, -1)) for k in (kx, ky, kz)]
    return torch.stack(components, dim=-4)


def _periodic_gaussian_1d(x: Tensor, centre: Tensor, sigma: Tensor, box_size: float, images: int = 2) -> Tensor:
    """``sum_m exp(-(x - c + m L)^2 / (2 sigma^2))`` over ``m = -images..images``: ``(..., R)``."""
    d = x - centre[..., None]
    d = d - box_size * torch.round(d / box_size)
    total = torch.zeros_like(d)
    for m in range(-images, images + 1):
        total = total + torch.exp(-((d + m * box_size) ** 2) / (2 * sigma[..., None] ** 2))
    return total


def gaussian_charges(centres: Tensor, charges: Tensor, widths: Tensor, resolution: int, box_size: float = 1.0,
                     periodic: bool = True) -> Tensor:
    """The density of Gaussian blobs, ``sum_i q_i N(p; c_i, s_i^2 I)`` (each integrates to ``q_i``).

    ``centres`` ``(..., M, 3)`` in (x, y, z) with the box centred at the origin, ``charges`` and
    ``widths`` ``(..., M)``; returns ``(..., R, R, R)`` sampled on the grid of :func:`grid_coordinates`
    (axes z, y, x). ``periodic``: sum the periodic images (a smooth periodic field), else one blob
    each (for analytic rotations of blobs far from the faces). dtype of ``centres``.
    """
    box_size = _check_box(box_size, "gaussian_charges")
    dtype = centres.dtype
    x = grid_coordinates(resolution, box_size, dtype).to(centres.device)
    norm = charges / ((2 * math.pi) ** 1.5 * widths**3)
    factors = []
    for axis in range(3):  # x, y, z
        if periodic:
            factors.append(_periodic_gaussian_1d(x, centres[..., axis], widths, box_size))
        else:
            factors.append(torch.exp(-((x - centres[..., axis, None]) ** 2) / (2 * widths[..., None] ** 2)))
    fx, fy, fz = factors  # (..., M, R)
    return torch.einsum("...m,...mz,...my,...mx->...zyx", norm, fz, fy, fx)


def random_charge_density(n: int, resolution: int, generator: torch.Generator | None = None, *,
                          box_size: float = 1.0, blobs: tuple[int, int] = (4, 8),
                          widths: tuple[float, float] = (0.07, 0.12), dtype: torch.dtype = torch.float64) -> Tensor:
    """``n`` random neutral charge densities ``(n, R, R, R)`` on a periodic cube of side ``box_size``.

    Each is a sum of ``blobs[0]..blobs[1]`` periodic Gaussian blobs at uniform random centres, with
    widths uniform in ``widths`` (fractions of the box) and charges of random sign and size 0.5-1.5,
    shifted to sum to zero; the grid mean is then removed, so every density is exactly neutral. The
    distribution is invariant under rotations and translations of the box.
    """
    for value, what in ((n, "n"), (resolution, "resolution")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"random_charge_density: {what} must be a positive int, got {value!r}")
    if resolution < 4:
        raise ValueError(f"random_charge_density: resolution must be >= 4, got {resolution}")
    box_size = _check_box(box_size, "random_charge_density")
    low, high = blobs
    if not 1 <= low <= high:
        raise ValueError(f"random_charge_density: blobs must be (min, max) with 1 <= min <= max, got {blobs!r}")
    if not 0 < widths[0] <= widths[1]:
        raise ValueError(f"random_charge_density: widths must be (min, max) with 0 < min <= max, got {widths!r}")
    densities = []
    for _ in range(n):
        count = int(torch.randint(low, high + 1, (), generator=generator))
        centres = (torch.rand(count, 3, generator=generator, dtype=dtype) - 0.5) * box_size
        sizes = widths[0] + (widths[1] - widths[0]) * torch.rand(count, generator=generator, dtype=dtype)
        signs = torch.where(torch.rand(count, generator=generator, dtype=dtype) < 0.5, -1.0, 1.0).to(dtype)
        charges = signs * (0.5 + torch.rand(count, generator=generator, dtype=dtype))
        if count > 1:
            charges = charges - charges.mean()
        rho = gaussian_charges(centres, charges, sizes * box_size, resolution, box_size)
        densities.append(rho - rho.mean())
    return torch.stack(densities)
