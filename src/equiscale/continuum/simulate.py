"""2D incompressible Navier-Stokes in vorticity form on a periodic square, pseudo-spectral.

    d omega / dt + u . grad(omega) = nu laplacian(omega),   u = (d psi / dy, -d psi / dx),   -laplacian(psi) = omega

Grid convention (as everywhere in equiscale): a field ``[..., N, N]`` holds x along the columns and
y along the rows (y grows with the row index) on ``[0, L)^2``, spacing ``L / N``; omega > 0 turns
counter-clockwise in (x, y). Rotating the field by 90 degrees (``torch.rot90(w, 1, dims=(-1, -2))``)
rotates the flow; reflecting it (``w.flip(-2)``) reflects the flow and flips the sign of omega
(vorticity is a pseudo-scalar). The solver commutes with both to rounding: its 2/3 dealiasing
mask ``|k_x|, |k_y| < N / 3`` is symmetric under every symmetry of the square.

Time stepping: integrating-factor RK4 (the viscous term is integrated exactly, the advection by
classical RK4), with a fixed number of sub-steps per saved frame chosen from a CFL bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SpectralGrid", "simulate_vorticity", "cfl_substeps", "random_vorticity", "taylor_green_vorticity", "velocity"]


@dataclass(frozen=True)
class SpectralGrid:
    """Wavenumbers, dealiasing mask and inverse Laplacian of an ``N x N`` periodic grid of side ``L``.

    Arrays are laid out for ``torch.fft.rfft2`` of ``[..., N(y), N(x)]``: ``(N, N // 2 + 1)``.
    """

    kx: Tensor
    ky: Tensor
    mask: Tensor
    inverse_laplacian: Tensor
    k2: Tensor

    @classmethod
    def build(cls, n: int, domain_size: float, dtype: torch.dtype, device: torch.device | str | None = None) -> "SpectralGrid":
        iy = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=device)  # integer wavenumbers along y
        ix = torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype, device=device)  # along x (half spectrum)
        scale = 2 * math.pi / domain_size
        ky, kx = torch.meshgrid(iy * scale, ix * scale, indexing="ij")
        iy2, ix2 = torch.meshgrid(iy, ix, indexing="ij")
        mask = ((iy2.abs() < n / 3) & (ix2.abs() < n / 3)).to(dtype)
        k2 = kx**2 + ky**2
        inverse = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
        return cls(kx, ky, mask, inverse, k2)


def _check_field(w: Tensor, what: str) -> None:
    if not isinstance(w, Tensor) or not w.is_floating_point():
        raise ValueError(f"{what} must be a floating-point torch tensor [..., N, N]")
    if w.dim() < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"{what} must be square [..., N, N] on the periodic square, got shape {tuple(w.shape)}")
    if w.shape[-1] < 4:
        raise ValueError(f"{what} needs at least 4x4 points, got {tuple(w.shape[-2:])}")
    if not torch.isfinite(w).all():
        raise ValueError(f"{what} contains NaN or infinite values")


def velocity(w: Tensor, domain_size: float = 2 * math.pi) -> tuple[Tensor, Tensor]:
    """The velocity ``(u, v)`` (x and y components) of a vorticity field ``[..., N, N]``."""
    _check_field(w, "velocity: w")
    grid = SpectralGrid.build(w.shape[-1], domain_size, w.dtype, w.device)
    psi = torch.fft.rfft2(w) * grid.inverse_laplacian
    n = w.shape[-2:]
    return torch.fft.irfft2(1j * grid.ky * psi, s=n), torch.fft.irfft2(-1j * grid.kx * psi, s=n)


def _advection(w_hat: Tensor, grid: SpectralGrid, shape: tuple[int, int]) -> Tensor:
    """``-(u . grad omega)`` in spectral space, dealiased."""
    w_hat = w_hat * grid.mask
    psi = w_hat * grid.inverse_laplacian
    u = torch.fft.irfft2(1j * grid.ky * psi, s=shape)
    v = torch.fft.irfft2(-1j * grid.kx * psi, s=shape)
    wx = torch.fft.irfft2(1j * grid.kx * w_hat, s=shape)
    wy = torch.fft.irfft2(1j * grid.ky * w_hat, s=shape)
    return -torch.fft.rfft2(u * wx + v * wy) * grid.mask


def cfl_substeps(w: Tensor, dt: float, domain_size: float = 2 * math.pi, cfl: float = 0.5) -> int:
    """The fewest equal sub-steps of a frame interval ``dt`` with ``max|u| h / dx <= cfl`` for ``w``."""
    u, v = velocity(w, domain_size)
    speed = float(torch.sqrt(u**2 + v**2).max()) if w.numel() else 0.0
    return max(1, math.ceil(dt * speed / (cfl * domain_size / w.shape[-1])))


def simulate_vorticity(w0: Tensor, dt: float, steps: int, viscosity: float, domain_size: float = 2 * math.pi,
                       cfl: float = 0.5, substeps: int | None = None, progress: bool = False) -> Tensor:
    """Evolve vorticity ``w0`` ``(..., N, N)`` and return ``(..., steps + 1, N, N)`` frames ``dt`` apart.

    Frame 0 is ``w0`` itself. Each frame interval is split into ``substeps`` equal RK4 steps; by
    default the fewest that keep ``max|u| h / dx <= cfl`` for the initial velocity (a decaying flow
    only slows down). Symmetry: ``simulate(rot90(w0)) = rot90(simulate(w0))`` and
    ``simulate(-flip(w0)) = -flip(simulate(w0))`` to rounding; float64 input gives float64 output.
    """
    _check_field(w0, "simulate_vorticity: w0")
    for value, what in ((dt, "dt"), (domain_size, "domain_size")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"simulate_vorticity: {what} must be a positive number, got {value!r}")
    if not (isinstance(viscosity, (int, float)) and math.isfinite(viscosity) and viscosity >= 0):
        raise ValueError(f"simulate_vorticity: viscosity must be >= 0, got {viscosity!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"simulate_vorticity: steps must be an int >= 0, got {steps!r}")
    n = w0.shape[-1]
    shape = (n, n)
    grid = SpectralGrid.build(n, domain_size, w0.dtype, w0.device)
    if substeps is None:
        substeps = cfl_substeps(w0, dt, domain_size, cfl)
    elif isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"simulate_vorticity: substeps must be a positive int, got {substeps!r}")
    h = dt / substeps
    half = torch.exp(-viscosity * grid.k2 * h / 2)
    full = half * half

    w_hat = torch.fft.rfft2(w0)
    frames = [w0]
    from equiscale.train.progress import progress_bar

    iterator = progress_bar(range(steps), enabled=progress, desc="simulating", unit="frame", leave=False)
    for _ in iterator:
        for _ in range(substeps):
            a = h * _advection(w_hat, grid, shape)
            b = h * _advection(half * (w_hat + a / 2), grid, shape)
            c = h * _advection(half * w_hat + b / 2, grid, shape)
            d = h * _advection(full * w_hat + half * c, grid, shape)
            w_hat = full * w_hat + (full * a + 2 * half * (b + c) + d) / 6
        frames.append(torch.fft.irfft2(w_hat, s=shape))
    return torch.stack(frames, dim=-3)


def random_vorticity(batch: int, resolution: int, peak_wavenumber: float = 4.0, velocity_rms: float = 0.5,
                     domain_size: float = 2 * math.pi, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64) -> Tensor:
    """Smooth, isotropic random vorticity ``(batch, N, N)`` for decaying turbulence.

    White noise filtered by ``|k| exp(-(|k| / k_0)^2)`` (statistically invariant under rotations and
    reflections), dealiased, with zero mean, and scaled so that each field's velocity has RMS
    ``velocity_rms``.
    """
    if resolution < 4:
        raise ValueError(f"random_vorticity: resolution must be >= 4, got {resolution}")
    grid = SpectralGrid.build(resolution, domain_size, dtype)
    noise = torch.randn(batch, resolution, resolution, generator=generator, dtype=dtype)
    k = grid.k2.sqrt()
    k0 = peak_wavenumber * 2 * math.pi / domain_size
    w_hat = torch.fft.rfft2(noise) * k * torch.exp(-((k / k0) ** 2)) * grid.mask
    w = torch.fft.irfft2(w_hat, s=(resolution, resolution))
    u, v = velocity(w, domain_size)
    rms = torch.sqrt((u**2 + v**2).mean((-1, -2), keepdim=True)).clamp_min(1e-30)
    return w * (velocity_rms / rms)


def taylor_green_vorticity(resolution: int, wavenumber: int = 1, amplitude: float = 1.0,
                           domain_size: float = 2 * math.pi, dtype: torch.dtype = torch.float64) -> Tensor:
    """``omega = 2 k^2 A cos(k x) cos(k y)`` with ``k = 2 pi wavenumber / L``: decays as ``exp(-2 nu k^2 t)``."""
    x = torch.arange(resolution, dtype=dtype) * (domain_size / resolution)
    k = 2 * math.pi * wavenumber / domain_size
    y, x = torch.meshgrid(x, x, indexing="ij")
    return 2 * k**2 * amplitude * torch.cos(k * x) * torch.cos(k * y)
