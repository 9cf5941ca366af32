"""Energy spectrum, enstrophy and horizons against independent computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from equiscale.continuum.simulate import random_vorticity
from equiscale.continuum.spectra import energy_spectrum, enstrophy, horizon


def test_a_single_mode_puts_its_energy_in_its_shell():
    resolution, size = 32, 4 * math.pi
    x = torch.arange(resolution, dtype=torch.float64) * size / resolution
    y, x = torch.meshgrid(x, x, indexing="ij")
    # stream function psi = sin(3 * 2 pi x / size): w = -lap psi = (6 pi / size)^2 psi, u = 0, v = -dpsi/dx
    q = 3 * 2 * math.pi / size
    w = q ** 2 * torch.sin(q * x)
    k, spectrum = energy_spectrum(w, size)
    kinetic = float((0.5 * (q * torch.cos(q * x)) ** 2).mean())
    assert k[2] == 3 and spectrum[2] == pytest.approx(kinetic, rel=1e-12)
    assert np.abs(np.delete(spectrum, 2)).max() < 1e-20
    assert enstrophy(w) == pytest.approx(0.5 * q ** 4 / 2, rel=1e-12)


def test_the_spectrum_sums_to_the_kinetic_energy_of_the_velocity():
    w = random_vorticity(2, 24, generator=torch.Generator().manual_seed(0)).double()
    # velocity from the stream function with numpy's FFT: lap psi = -w, u = dpsi/dy, v = -dpsi/dx
    k = np.fft.fftfreq(24, d=1 / 24)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    k2 = np.where(kx ** 2 + ky ** 2 == 0, 1, kx ** 2 + ky ** 2)
    psi_hat = np.fft.fft2(w.numpy()) / k2
    u = np.fft.ifft2(1j * ky * psi_hat).real
    v = np.fft.ifft2(-1j * kx * psi_hat).real
    _, spectrum = energy_spectrum(w)
    shells_outside = np.sqrt(kx ** 2 + ky ** 2) > 12.5  # the corners beyond k = R/2 are not in a shell
    assert spectrum.shape == (2, 12)
    corner = np.where(shells_outside, np.abs(np.fft.fft2(w.numpy()) / 24 ** 2) ** 2 / k2 / 2, 0).sum((-1, -2))
    np.testing.assert_allclose(spectrum.sum(-1) + corner, 0.5 * (u ** 2 + v ** 2).mean((-1, -2)), rtol=1e-10)


def test_horizons():
    errors = np.array([0.1, 0.3, 0.6, 0.4, 0.9])
    assert horizon(errors, 0.5) == 3 and horizon(errors, 1.0) is None
    assert horizon(errors, np.array([0.2, 0.4, 0.7, 0.3, 1.0])) == 4
    assert horizon(np.array([0.1, np.nan]), 0.5) == 2  # a diverged rollout passes every threshold
    with pytest.raises(ValueError, match="square frames"):
        energy_spectrum(torch.zeros(4, 6))
