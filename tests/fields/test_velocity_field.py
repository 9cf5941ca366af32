"""Velocity from vorticity: the analytic Taylor-Green field, C(4) equivariance as a vector field, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from equiscale.continuum.simulate import taylor_green_vorticity
from equiscale.fields.velocity_field import (rotate_vector_field, velocity_frames, velocity_from_vorticity,
                                          vorticity_from_velocity)
from equiscale.groups import C
from equiscale.testing import GridField, equivariance_error


@pytest.mark.parametrize("n, wavenumber, domain", [(16, 1, 2 * math.pi), (12, 2, 3.0), (9, 1, 1.0)])
def test_taylor_green_velocity_is_analytic(n, wavenumber, domain):
    amplitude = 0.7
    w = taylor_green_vorticity(n, wavenumber, amplitude, domain)  # 2 k^2 A cos(kx) cos(ky): psi = A cos cos
    x = torch.arange(n, dtype=torch.float64) * (domain / n)
    y, x = torch.meshgrid(x, x, indexing="ij")
    k = 2 * math.pi * wavenumber / domain
    u = velocity_from_vorticity(w, domain)
    assert u.shape == (2, n, n) and u.dtype == torch.float64
    torch.testing.assert_close(u[0], -amplitude * k * torch.cos(k * x) * torch.sin(k * y), atol=1e-12, rtol=0)
    torch.testing.assert_close(u[1], amplitude * k * torch.sin(k * x) * torch.cos(k * y), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [8, 9])
def test_quarter_turns_rotate_the_velocity_field_and_its_vectors(n):
    """For any input (Nyquist content included): rotating the vorticity rotates the grid and the vectors."""
    group = C(4)
    w = torch.randn(3, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    error = equivariance_error(lambda x: velocity_from_vorticity(x, 2.0), w, group, GridField(None),
                               GridField(group.standard_representation(), axis=-3), n_samples=8,
                               generator=torch.Generator().manual_seed(1))
    assert error < 1e-12
    u = velocity_from_vorticity(w)
    for k in range(4):
        expected = GridField(group.standard_representation(), axis=-3).apply(group, torch.tensor(k), u, None)
        torch.testing.assert_close(rotate_vector_field(u, k), expected, atol=1e-15, rtol=0)
        torch.testing.assert_close(velocity_from_vorticity(torch.rot90(w, k, dims=(-1, -2))), expected, atol=1e-12,
                                   rtol=0)


def test_curl_recovers_the_vorticity_and_the_flow_is_divergence_free():
    n = 11  # odd: no Nyquist mode is lost
    w = torch.randn(2, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u = velocity_from_vorticity(w, 5.0)
    torch.testing.assert_close(vorticity_from_velocity(u, 5.0), w - w.mean((-1, -2), keepdim=True), atol=1e-12, rtol=0)
    kx = torch.fft.fftfreq(n, 1 / n, dtype=torch.float64)
    divergence = torch.fft.ifft2(1j * kx[None, :] * torch.fft.fft2(u[:, 0]) + 1j * kx[:, None] * torch.fft.fft2(u[:, 1]))
    assert divergence.abs().max() < 1e-12


def test_frames_numpy_and_float32():
    w = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    u = velocity_frames(w)
    assert u.shape == (2, 3, 2, 8, 8) and u.dtype == torch.float32
    torch.testing.assert_close(u, velocity_from_vorticity(torch.from_numpy(w).double()).float())
    assert velocity_from_vorticity(torch.from_numpy(w)).dtype == torch.float32


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(8, 6), "square"),
    (torch.full((8, 8), float("nan")), "NaN"),
    (torch.zeros(8, 8, dtype=torch.int64), "floating"),
    ([[0.0]], "torch tensor or a numpy array"),
])
def test_bad_vorticity_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        velocity_from_vorticity(bad)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="domain_size"):
        velocity_from_vorticity(torch.zeros(8, 8), domain_size=-1.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, R, R\)"):
        vorticity_from_velocity(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="2, H, W"):
        rotate_vector_field(torch.zeros(3, 8, 8))
