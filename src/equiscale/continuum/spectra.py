"""Physical diagnostics of vorticity fields: energy spectrum, enstrophy, and error horizons.

Fields are vorticity ``[..., R, R]`` on a periodic square of side ``domain_size`` (our layout,
``[..., y, x]``; the diagnostics here do not depend on it). With ``w_hat`` the discrete Fourier
coefficients normalised by ``R^2`` (so that ``w = sum_k w_hat(k) exp(i k.x)``), the velocity of a
2D incompressible flow has ``|u_hat(k)|^2 = |w_hat(k)|^2 / |k|^2``, and

* the energy spectrum ``E(k) = sum over |k'| in [k - 1/2, k + 1/2) of |u_hat(k')|^2 / 2`` for the
  integer shells k = 1 .. R/2 (in units of the fundamental wavenumber ``2 pi / domain_size``), so
  that ``sum_k E(k)`` is the mean kinetic energy per unit area (the k = 0 mode carries none);
* the enstrophy ``Z = mean(w^2) / 2`` over the grid.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["energy_spectrum", "enstrophy", "horizon"]


def energy_spectrum(w: Tensor, domain_size: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    """Shell-summed kinetic energy spectrum of vorticity fields.

    Args:
        w: vorticity ``[..., R, R]``.
        domain_size: side of the periodic square.

    Returns:
        ``(k, E)``: wavenumbers ``[R // 2]`` (1 .. R/2, in units of ``2 pi / domain_size``) and the
        spectra ``[..., R // 2]`` (float64 numpy).
    """
    if w.dim() < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"energy_spectrum: fields must be [..., R, R] with square frames, got {tuple(w.shape)}")
    resolution = w.shape[-1]
    w_hat = torch.fft.fft2(w.double()) / resolution ** 2
    k = torch.fft.fftfreq(resolution, d=1.0 / resolution, dtype=torch.float64)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    k2 = kx ** 2 + ky ** 2
    fundamental = 2 * math.pi / domain_size
    energy = 0.5 * w_hat.abs() ** 2 / (k2 * fundamental ** 2).clamp_min(1e-300)
    energy = torch.where(k2 > 0, energy, torch.zeros_like(energy))
    shells = torch.round(k2.sqrt()).long()
    count = resolution // 2
    flat = energy.flatten(-2)
    spectrum = torch.zeros(*flat.shape[:-1], count + 1, dtype=torch.float64)
    spectrum.scatter_add_(-1, shells.flatten().clamp_max(count).expand_as(flat), flat * (shells.flatten() <= count))
    return np.arange(1, count + 1, dtype=np.float64), spectrum[..., 1:].numpy()


def enstrophy(w: Tensor) -> np.ndarray:
    """``mean(w^2) / 2`` over the last two axes: ``[...]`` float64 numpy."""
    return (0.5 * w.double().square().mean(dim=(-1, -2))).numpy()


def horizon(errors: np.ndarray, threshold: float | np.ndarray) -> int | None:
    """The first rollout step (1-based) at which ``errors`` (``[steps]``, step 1 first) exceeds
    ``threshold`` (a number, or a curve of the same length such as persistence's); None if never."""
    errors = np.asarray(errors, dtype=np.float64)
    above = ~(errors <= np.broadcast_to(np.asarray(threshold, dtype=np.float64), errors.shape))  # NaN counts as above
    return int(np.argmax(above)) + 1 if above.any() else None
