"""The pseudo-spectral simulator: analytic Taylor-Green decay, D(4) symmetry, conservation, signs."""
from __future__ import annotations

import math

import pytest
import torch

from equiscale.continuum import random_vorticity, simulate_vorticity, taylor_green_vorticity, velocity
from equiscale.groups import C, D
from equiscale.testing import GridField


def _field(n=32, batch=2, seed=0):
    return random_vorticity(batch, n, generator=torch.Generator().manual_seed(seed))


def test_taylor_green_decays_at_the_analytic_rate():
    nu, wavenumber = 0.02, 2
    w0 = taylor_green_vorticity(32, wavenumber, amplitude=0.7)
    frames = simulate_vorticity(w0, dt=0.25, steps=8, viscosity=nu)
    k = wavenumber  # domain 2 pi: k = 2 pi wavenumber / L = wavenumber
    t = 0.25 * torch.arange(9, dtype=torch.float64)
    expected = w0 * torch.exp(-2 * nu * k**2 * t)[:, None, None]
    assert frames.shape == (9, 32, 32)
    assert (frames - expected).abs().max() / w0.abs().max() < 1e-10
    assert frames[-1].abs().max() < 0.9 * w0.abs().max()  # it really decayed


@pytest.mark.parametrize("group", [C(4), D(4)], ids=str)
def test_simulator_is_equivariant_in_float64(group):
    """Rotations move the field; reflections move it and flip its sign (vorticity is a pseudo-scalar)."""
    w0 = _field()[:, None]  # (B, 1, N, N): the sign acts on axis -3
    simulate = lambda w: simulate_vorticity(w[:, 0], 0.2, 5, 5e-3)[:, None]  # noqa: E731 - (B, 1, T+1, N, N)
    field_in = GridField(group.irrep(1, 0) if group == D(4) else None, axis=-3)
    field_out = GridField(group.irrep(1, 0) if group == D(4) else None, axis=-4)
    y = simulate(w0)
    for g in group.elements():
        moved = simulate(field_in.apply(group, g, w0, None))
        error = (moved - field_out.apply(group, g, y, None)).abs().max() / y.abs().max()
        assert error < 1e-10, f"element {int(g)}: {error:.2e}"


def test_reflection_as_a_plain_scalar_is_not_a_symmetry():
    w0 = _field(batch=1)
    y = simulate_vorticity(w0, 0.2, 5, 5e-3)
    reflected = simulate_vorticity(w0.flip(-2), 0.2, 5, 5e-3)
    assert (reflected - y.flip(-1)).abs().max() / y.abs().max() > 1e-2


def test_inviscid_flow_conserves_energy_and_enstrophy():
    w0 = _field(batch=1, seed=1)
    frames = simulate_vorticity(w0, 0.1, 10, 0.0)
    u, v = velocity(frames)
    energy = (u**2 + v**2).mean((-1, -2))
    enstrophy = (frames**2).mean((-1, -2))
    assert ((energy - energy[..., :1]).abs() / energy[..., :1]).max() < 1e-6
    assert ((enstrophy - enstrophy[..., :1]).abs() / enstrophy[..., :1]).max() < 1e-6
    assert (frames[..., -1, :, :] - w0).abs().max() > 0.05 * w0.abs().max()  # the flow did move


def test_viscosity_dissipates_enstrophy():
    frames = simulate_vorticity(_field(batch=1), 0.2, 5, 5e-2)
    enstrophy = (frames**2).mean((-1, -2)).squeeze(0)
    assert (enstrophy[1:] < enstrophy[:-1]).all()


def test_co_rotating_vortices_orbit_counter_clockwise():
    """Sign convention: omega > 0 turns counter-clockwise in (x, y), y growing with the row index."""
    n, length = 64, 2 * math.pi
    c = (torch.arange(n, dtype=torch.float64) + 0.5) * length / n - length / 2
    y, x = torch.meshgrid(c, c, indexing="ij")
    blob = lambda cx: torch.exp(-((x - cx) ** 2 + y**2) / (2 * 0.3**2))  # noqa: E731
    w0 = 5 * (blob(0.8) + blob(-0.8))
    w = simulate_vorticity(w0, 0.5, 1, 1e-3)[-1]
    right = x > 0
    y_centre = (w * y * right).sum() / (w * right).sum()
    assert y_centre > 0.05  # the right vortex moved towards +y


def test_float32_and_batch_shapes():
    w0 = _field(n=16, batch=3).float().reshape(3, 1, 16, 16)
    frames = simulate_vorticity(w0, 0.2, 2, 5e-3)
    assert frames.shape == (3, 1, 3, 16, 16) and frames.dtype == torch.float32


@pytest.mark.parametrize("w0,kwargs,message", [
    (torch.zeros(2, 8, 6), {}, "square"),
    (torch.full((8, 8), float("nan")), {}, "NaN"),
    (torch.zeros(8, 8, dtype=torch.int64), {}, "floating-point"),
    (torch.zeros(8, 8), {"dt": -1.0}, "dt"),
    (torch.zeros(8, 8), {"viscosity": -1.0}, "viscosity"),
    (torch.zeros(8, 8), {"steps": 1.5}, "steps"),
])
def test_bad_input_is_named(w0, kwargs, message):
    arguments = {"dt": 0.1, "steps": 1, "viscosity": 1e-3} | kwargs
    with pytest.raises(ValueError, match=message):
        simulate_vorticity(w0, **arguments)
