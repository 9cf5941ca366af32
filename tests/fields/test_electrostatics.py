"""Periodic electrostatics: an analytic Fourier mode, the 24 rotations of the cube, Gauss's law, bad input."""
from __future__ import annotations

import math

import pytest
import torch

from equiscale.fields.electrostatics import (electric_field, gaussian_charges, grid_coordinates, potential,
                                                random_charge_density)
from equiscale.fields.rotation_error import cube_rotations
from equiscale.groups import SO3
from equiscale.testing import GridField


@pytest.mark.parametrize("n, box, mode", [(12, 2.0, (1, -2, 3)), (9, 1.0, (0, 1, 1)), (8, 3.0, (2, 0, -1))])
def test_single_fourier_mode_is_analytic(n, box, mode):
    """rho = cos(k.x): phi = cos(k.x) / |k|^2, E = k sin(k.x) / |k|^2."""
    x = grid_coordinates(n, box)
    z, y, x = torch.meshgrid(x, x, x, indexing="ij")
    k = torch.tensor(mode, dtype=torch.float64) * 2 * math.pi / box
    phase = k[0] * x + k[1] * y + k[2] * z
    k2 = float(k.square().sum())
    rho = torch.cos(phase)
    torch.testing.assert_close(potential(rho, box), torch.cos(phase) / k2, atol=1e-13, rtol=0)
    field = electric_field(rho[None], box)
    assert field.shape == (1, 3, n, n, n) and field.dtype == torch.float64
    for axis in range(3):  # (E_x, E_y, E_z)
        torch.testing.assert_close(field[0, axis], k[axis] * torch.sin(phase) / k2, atol=1e-13, rtol=0)


def test_the_24_rotations_of_the_cube():
    rotations = cube_rotations()
    assert len(rotations) == 24
    assert len({tuple(r.flatten().tolist()) for r in rotations}) == 24
    for r in rotations:
        torch.testing.assert_close(r @ r.T, torch.eye(3, dtype=torch.float64))
        assert abs(float(torch.linalg.det(r)) - 1) < 1e-12


@pytest.mark.parametrize("n", [6, 7])
def test_field_rotates_with_the_charges_under_cube_rotations(n):
    """Any input, Nyquist content included: E(R.rho) = R.E(rho), vectors (E_x, E_y, E_z) turned with the grid."""
    group, scalar, vector = SO3(), GridField(None, ndim=3), GridField(SO3().irrep(1), axis=-4, ndim=3)
    rho = torch.randn(2, n, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    field = electric_field(rho, 1.5)
    for g in cube_rotations():
        moved = electric_field(scalar.apply(group, g, rho, None), 1.5)
        torch.testing.assert_close(moved, vector.apply(group, g, field, None), atol=1e-13, rtol=0)


def test_random_densities_are_neutral_smooth_and_obey_gauss():
    rho = random_charge_density(3, 11, torch.Generator().manual_seed(0), box_size=2.0)
    again = random_charge_density(3, 11, torch.Generator().manual_seed(0), box_size=2.0)
    assert rho.shape == (3, 11, 11, 11) and rho.dtype == torch.float64
    torch.testing.assert_close(rho, again)
    assert rho.mean((-3, -2, -1)).abs().max() < 1e-12
    assert (rho > 0).any() and (rho < 0).any()
    field = electric_field(rho, 2.0)  # div E = rho (an odd grid has no Nyquist mode to lose)
    k = torch.fft.fftfreq(11, 1 / 11, dtype=torch.float64) * 2 * math.pi / 2.0
    spectra = torch.fft.fftn(field, dim=(-3, -2, -1))
    divergence = torch.fft.ifftn(1j * (k[None, None, :] * spectra[:, 0] + k[None, :, None] * spectra[:, 1]
                                       + k[:, None, None] * spectra[:, 2]), dim=(-3, -2, -1)).real
    torch.testing.assert_close(divergence, rho, atol=1e-10, rtol=0)


def test_gaussian_charges_integrate_to_their_charge():
    centres = torch.tensor([[0.1, -0.2, 0.3], [0.45, 0.0, -0.45]], dtype=torch.float64)
    charges = torch.tensor([1.5, -0.5], dtype=torch.float64)
    rho = gaussian_charges(centres, charges, torch.tensor([0.1, 0.12], dtype=torch.float64), 24, 1.0)
    assert abs(float(rho.sum()) / 24**3 - 1.0) < 1e-9  # periodic images: the blob at the face wraps round


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(4, 4, 5), "cube"),
    (torch.full((4, 4, 4), float("inf")), "NaN or infinite"),
    (torch.zeros(4, 4, 4, dtype=torch.int32), "floating"),
])
def test_bad_densities_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        electric_field(bad)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="box_size"):
        electric_field(torch.zeros(4, 4, 4), box_size=0)
    with pytest.raises(ValueError, match="resolution"):
        random_charge_density(2, 3)
    with pytest.raises(ValueError, match="blobs"):
        random_charge_density(2, 8, blobs=(0, 2))
