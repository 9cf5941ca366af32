"""Velocity fields of 2D incompressible flow from vorticity, spectrally on the periodic square.

    laplacian(psi) = -omega,   u_x = d psi / dy,   u_y = -d psi / dx

Grid convention (as everywhere in equiscale): a field ``[..., R, R]`` holds x along the columns (W)
and y along the rows (H), spacing ``L / R`` on the periodic square of side ``L``; a vector field is
``[..., 2, R, R]`` with the components ``(u_x, u_y)`` on the channel axis. A rotation ``g`` acts on a
vector field as ``(g.u)(p) = R(g) u(R(g)^-1 p)``: the grid moves and the vectors turn with it
(:class:`equiscale.testing.GridField` with the standard representation on axis ``-3``). For the
quarter turn ``torch.rot90(w, 1, dims=(-1, -2))`` of the vorticity, the velocity becomes
:func:`rotate_vector_field` ``(u, 1)``.

Derivatives drop the Nyquist wavenumber of even grids (whose sign is ambiguous), so the maps here
commute with the symmetries of the square to rounding for any input, not only for band-limited ones.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from equiscale.continuum.simulate import _check_field

__all__ = ["velocity_from_vorticity", "vorticity_from_velocity", "rotate_vector_field", "velocity_frames",
           "derivative_wavenumbers"]


def derivative_wavenumbers(n: int, domain_size: float, dtype: torch.dtype, device: Any = None, half: bool = False
                           ) -> Tensor:
    """Angular wavenumbers ``2 pi i / L`` of an ``n``-point periodic axis (``rfftfreq`` layout if ``half``),
    with the Nyquist wavenumber of an even ``n`` set to zero (its derivative is not a real field)."""
    index = (torch.fft.rfftfreq if half else torch.fft.fftfreq)(n, d=1.0 / n, dtype=dtype, device=device)
    if n % 2 == 0:
        index = torch.where(index.abs() == n // 2, torch.zeros_like(index), index)
    return index * (2 * math.pi / domain_size)


def _laplacian_wavenumbers(n: int, domain_size: float, dtype: torch.dtype, device: Any) -> tuple[Tensor, Tensor]:
    """``(k^2, 1 / k^2)`` on the rfft2 layout ``(n, n // 2 + 1)`` (Nyquist kept: the Laplacian is even)."""
    scale = 2 * math.pi / domain_size
    ky = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=device) * scale
    kx = torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype, device=device) * scale
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    inverse = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
    return k2, inverse


def _as_tensor(x: Any, what: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ValueError(f"{what} must be a torch tensor or a numpy array, got {type(x).__name__}")
    return x


def _check_domain(domain_size: Any, where: str) -> float:
    if isinstance(domain_size, bool) or not isinstance(domain_size, (int, float)) or not (
            math.isfinite(domain_size) and domain_size > 0):
        raise ValueError(f"{where}: domain_size must be a positive number, got {domain_size!r}")
    return float(domain_size)


def velocity_from_vorticity(w: Tensor | np.ndarray, domain_size: float = 2 * math.pi) -> Tensor:
    """The velocity ``(..., 2, R, R)`` = ``(u_x, u_y)`` of vorticity ``w`` ``(..., R, R)`` on a periodic square.

    Solves ``laplacian(psi) = -w`` spectrally (the mean of ``w`` is dropped: a periodic flow cannot
    carry net vorticity) and returns ``u_x = d psi / dy``, ``u_y = -d psi / dx``. Same dtype and device
    as ``w`` (a numpy array is converted); differentiable. Equivariant: rotating ``w`` by a quarter turn
    rotates the grid and the vectors of the result (:func:`rotate_vector_field`).
    """
    w = _as_tensor(w, "velocity_from_vorticity: w")
    _check_field(w, "velocity_from_vorticity: w")
    domain_size = _check_domain(domain_size, "velocity_from_vorticity")
    n = w.shape[-1]
    _, inverse = _laplacian_wavenumbers(n, domain_size, w.dtype, w.device)
    ky = derivative_wavenumbers(n, domain_size, w.dtype, w.device)[:, None]
    kx = derivative_wavenumbers(n, domain_size, w.dtype, w.device, half=True)[None, :]
    psi = torch.fft.rfft2(w) * inverse
    u = torch.fft.irfft2(1j * ky * psi, s=(n, n))
    v = torch.fft.irfft2(-1j * kx * psi, s=(n, n))
    return torch.stack([u, v], dim=-3)


def vorticity_from_velocity(u: Tensor | np.ndarray, domain_size: float = 2 * math.pi) -> Tensor:
    """The vorticity ``d u_y / dx - d u_x / dy`` ``(..., R, R)`` of a velocity field ``(..., 2, R, R)``, spectrally."""
    u = _as_tensor(u, "vorticity_from_velocity: u")
    if u.dim() < 3 or u.shape[-3] != 2:
        raise ValueError(f"vorticity_from_velocity: u must be (..., 2, R, R) with (u_x, u_y) on axis -3, got shape "
                         f"{tuple(u.shape)}")
    _check_field(u, "vorticity_from_velocity: u")
    domain_size = _check_domain(domain_size, "vorticity_from_velocity")
    n = u.shape[-1]
    ky = derivative_wavenumbers(n, domain_size, u.dtype, u.device)[:, None]
    kx = derivative_wavenumbers(n, domain_size, u.dtype, u.device, half=True)[None, :]
    spectrum = torch.fft.rfft2(u)
    return torch.fft.irfft2(1j * kx * spectrum[..., 1, :, :] - 1j * ky * spectrum[..., 0, :, :], s=(n, n))


def rotate_vector_field(u: Tensor, k: int = 1) -> Tensor:
    """Rotate a vector field ``(..., 2, H, W)`` by ``k`` quarter turns counter-clockwise in (x, y).

    The samples move as ``torch.rot90(., k, dims=(-1, -2))`` moves a scalar field and each vector
    ``(u_x, u_y)`` turns by ``k * 90`` degrees: ``(g.u)(p) = R u(R^-1 p)``.
    """
    if u.dim() < 3 or u.shape[-3] != 2:
        raise ValueError(f"rotate_vector_field: u must be (..., 2, H, W), got shape {tuple(u.shape)}")
    k = k % 4
    moved = torch.rot90(u, k, dims=(-1, -2))
    x, y = moved.unbind(-3)
    for _ in range(k):
        x, y = -y, x
    return torch.stack([x, y], dim=-3)


def velocity_frames(vorticity: Tensor | np.ndarray, domain_size: float = 2 * math.pi, chunk: int = 64) -> Tensor:
    """Velocity of every frame of trajectories ``[N, T + 1, R, R]``: float32 ``[N, T + 1, 2, R, R]``.

    Computed in float64 (``chunk`` trajectories at a time) and rounded to float32 once.
    """
    w = _as_tensor(vorticity, "velocity_frames: vorticity")
    if w.dim() != 4:
        raise ValueError(f"velocity_frames: vorticity must be [N, T + 1, R, R], got shape {tuple(w.shape)}")
    parts = [velocity_from_vorticity(w[i:i + chunk].double(), domain_size).float() for i in range(0, w.shape[0], chunk)]
    return torch.cat(parts)
