"""Equivariance under rotations that do not map the grid onto itself, measured on analytic inputs.

An analytic input (a few Gaussian vortices in 2D, Gaussian charge blobs in 3D, near the centre) is
rotated exactly, the rotated output of the unrotated input is read between grid points by Fourier
interpolation of the periodic output, and the two are compared at interior points only. The same
measurement of a map that is exactly equivariant in the continuum gives the floor of the method.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from equiscale.fields.velocity_field import derivative_wavenumbers

__all__ = ["fourier_interpolate", "analytic_flow", "angle_equivariance_2d", "cube_rotations", "analytic_charges",
           "rotation_error_3d", "rotation_about", "spectral_gradient"]


def fourier_interpolate(field: Tensor, points: Tensor) -> Tensor:
    """Values of a periodic band-limited field between its samples, float64 ``(..., n)``.

    ``field`` ``(..., *grid)`` with ``d = points.shape[-1]`` grid axes in array order (``(H, W)`` or
    ``(D, H, W)``); ``points`` ``(n, d)`` in pixel units ``(x, y[, z])`` with the grid centred as in
    :mod:`equiscale.testing` (sample ``i`` at ``i - (size - 1) / 2``). Exact at the samples; the
    Nyquist mode of an even axis is taken as a cosine (the real, symmetric choice).
    """
    d = points.shape[-1]
    sizes = field.shape[-d:]
    spectrum = torch.fft.fftn(field.double(), dim=tuple(range(-d, 0)))
    phases = []
    for axis in range(d):  # coordinate axis: 0 = x (last array axis)
        n = sizes[-1 - axis]
        t = points[:, axis].double() + (n - 1) / 2
        frequency = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
        phase = torch.exp(2j * math.pi * t[:, None] * frequency[None, :] / n)
        if n % 2 == 0:
            phase[:, n // 2] = torch.cos(math.pi * t).to(phase.dtype)
        phases.append(phase)
    equation = "...yx,py,px->...p" if d == 2 else "...zyx,pz,py,px->...p"
    values = torch.einsum(equation, spectrum, *reversed(phases)) / math.prod(sizes)
    return values.real


def _interior(resolution: int, d: int, fraction: float = 0.3) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Grid points within ``fraction * resolution`` pixels of the centre: coordinates ``(n, d)`` (x, y[, z])
    and their array indices (one tensor per array axis, in array order)."""
    centred = torch.arange(resolution, dtype=torch.float64) - (resolution - 1) / 2
    grids = torch.meshgrid(*([centred] * d), indexing="ij")  # array order (z,) y, x
    coords = torch.stack([grids[d - 1 - a].reshape(-1) for a in range(d)], -1)
    inside = coords.norm(dim=-1) <= fraction * resolution
    index = torch.nonzero(inside.reshape([resolution] * d), as_tuple=True)
    return coords[inside], index


def _rotation_2d(theta: float) -> Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def _rotated_error(reference: Tensor, moved: Tensor, rotation: Tensor, fraction: float = 0.3) -> float:
    """``max_interior |moved(p) - R reference(R^-1 p)| / max |reference|`` for vector fields ``(d, *grid)``."""
    d = rotation.shape[0]
    points, index = _interior(reference.shape[-1], d, fraction)
    expected = rotation @ fourier_interpolate(reference, points @ rotation)  # rows p^T R = (R^-1 p)^T
    actual = moved.double()[(slice(None), *index)]
    return float((actual - expected).abs().max() / reference.double().abs().max().clamp_min(1e-300))


def analytic_flow(resolution: int, domain_size: float, theta: float = 0.0) -> tuple[Tensor, Tensor]:
    """Three Gaussian vortices near the centre, rotated by ``theta``: velocity ``(2, R, R)`` and vorticity
    ``(R, R)``, float64, from the stream function ``psi = sum a_i exp(-|p - c_i|^2 / (2 s^2))`` analytically
    (so the rotated field is exact, not interpolated). Negligible beyond 0.4 of the box from the centre."""
    h = domain_size / resolution
    coords = (torch.arange(resolution, dtype=torch.float64) - (resolution - 1) / 2) * h
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    centres = torch.tensor([[0.08, 0.03], [-0.06, 0.07], [0.01, -0.09]], dtype=torch.float64) * domain_size
    centres = centres @ _rotation_2d(theta).T
    amplitudes, sigma = (1.0, -0.8, 0.6), 0.08 * domain_size
    u = torch.zeros(2, resolution, resolution, dtype=torch.float64)
    w = torch.zeros(resolution, resolution, dtype=torch.float64)
    for a, (cx, cy) in zip(amplitudes, centres.tolist()):
        dx, dy = x - cx, y - cy
        g = a * torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        u[0] += -dy / sigma**2 * g
        u[1] += dx / sigma**2 * g
        w += (2 / sigma**2 - (dx**2 + dy**2) / sigma**4) * g
    return u, w


def angle_equivariance_2d(increment: Callable[[Tensor, Tensor], Tensor], resolution: int, domain_size: float,
                          angles: list[float], speed: float) -> list[float]:
    """Equivariance error of a velocity map at each angle (radians), on :func:`analytic_flow` scaled to ``speed``.

    ``increment(u, w)`` gets the analytic velocity ``(1, 2, R, R)`` and vorticity ``(1, R, R)`` (float64)
    and returns the predicted velocity increment ``(2, R, R)``. The error at angle ``t`` is
    ``max_interior |inc(g.x)(p) - R inc(x)(R^-1 p)| / max |inc(x)|``.
    """
    u0, w0 = analytic_flow(resolution, domain_size)
    scale = speed / float(u0.norm(dim=0).max())
    reference = increment(u0[None] * scale, w0[None] * scale)
    errors = []
    for theta in angles:
        u, w = analytic_flow(resolution, domain_size, theta)
        errors.append(_rotated_error(reference, increment(u[None] * scale, w[None] * scale), _rotation_2d(theta)))
    return errors


def cube_rotations() -> list[Tensor]:
    """The 24 rotations of the cube, float64 ``(3, 3)`` matrices (the identity first)."""
    generators = [torch.tensor([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64),
                  torch.tensor([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=torch.float64)]
    out = [torch.eye(3, dtype=torch.float64)]
    for a in out:  # grows while iterating: closes under the generators
        for b in generators:
            c = a @ b
            if not any(torch.equal(c, m) for m in out):
                out.append(c)
    return out


def rotation_about(axis: Tensor, angle: float) -> Tensor:
    """The float64 rotation matrix ``(3, 3)`` by ``angle`` (radians) about ``axis`` (Rodrigues' formula)."""
    axis = axis / axis.norm()
    k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def analytic_charges(resolution: int, box_size: float, rotation: Tensor | None = None) -> Tensor:
    """Three neutral Gaussian charge blobs near the centre (charges 1, -0.7, -0.3), rotated exactly by ``rotation``:
    float64 ``(R, R, R)``. Negligible beyond 0.4 of the box from the centre."""
    from equiscale.fields.electrostatics import gaussian_charges

    centres = torch.tensor([[0.07, 0.02, -0.03], [-0.05, 0.06, 0.04], [0.01, -0.07, 0.05]], dtype=torch.float64)
    centres = centres * box_size
    if rotation is not None:
        centres = centres @ rotation.T
    charges = torch.tensor([1.0, -0.7, -0.3], dtype=torch.float64)
    widths = torch.full((3,), 0.09 * box_size, dtype=torch.float64)
    return gaussian_charges(centres, charges, widths, resolution, box_size, periodic=False)


def rotation_error_3d(field_map: Callable[[Tensor], Tensor], resolution: int, box_size: float,
                      rotations: list[Tensor], amplitude: float) -> list[float]:
    """Equivariance error of ``rho -> E`` at each rotation, on :func:`analytic_charges` scaled to ``max|rho| = amplitude``.

    ``field_map(rho)`` maps ``(1, R, R, R)`` float64 to ``(3, R, R, R)``. The error at ``R`` is
    ``max_interior |f(R.rho)(p) - R f(rho)(R^-1 p)| / max |f(rho)|``.
    """
    rho0 = analytic_charges(resolution, box_size)
    scale = amplitude / float(rho0.abs().max())
    reference = field_map(rho0[None] * scale)
    return [_rotated_error(reference, field_map(analytic_charges(resolution, box_size, r)[None] * scale), r)
            for r in rotations]


def spectral_gradient(rho: Tensor) -> Tensor:
    """``-grad(rho)`` ``(3, R, R, R)`` of ``(1, R, R, R)``: a local map, exactly SO(3)-equivariant in the continuum."""
    n = rho.shape[-1]
    k = [derivative_wavenumbers(n, n, torch.float64)] * 2 + [derivative_wavenumbers(n, n, torch.float64, half=True)]
    spectrum = torch.fft.rfftn(rho[0], dim=(-3, -2, -1))
    kz, ky, kx = k[0][:, None, None], k[1][None, :, None], k[2][None, None, :]
    return torch.stack([torch.fft.irfftn(-1j * kk * spectrum, s=(n, n, n)) for kk in (kx, ky, kz)])
