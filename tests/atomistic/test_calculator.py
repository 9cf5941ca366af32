"""The ASE calculator: same numbers as the model, both dtypes, no global dtype change, NVE MD."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equiscale.atomistic import Calculator, load_potential

from .conftest import predict


@pytest.fixture(scope="module")
def atoms(emt_structures):
    return emt_structures[2].to_atoms()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_calculator_matches_the_model(trained_run, emt_structures, atoms, dtype):
    default = torch.get_default_dtype()
    atoms = atoms.copy()
    atoms.calc = Calculator(trained_run / "best.pt", dtype=dtype)
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    assert torch.get_default_dtype() == default
    model = load_potential(trained_run / "best.pt", dtype="float64")
    out = predict(model, emt_structures[2], stress=True)
    tolerance = 1e-10 if dtype == "float64" else 1e-4
    assert abs(energy - float(out["energy"])) <= tolerance * max(1.0, abs(energy))
    assert np.abs(forces - out["forces"].numpy()).max() <= tolerance * 10
    assert np.abs(stress - out["stress"][0].numpy()).max() <= tolerance
    assert atoms.get_potential_energy() == energy  # cached while nothing changes
    assert isinstance(energy, float) and forces.dtype == np.float64


def test_calculator_refuses_unknown_elements_and_bad_dtypes(trained_run, atoms):
    atoms = atoms.copy()
    atoms.numbers[0] = 79
    atoms.calc = Calculator(trained_run / "best.pt")
    with pytest.raises(ValueError, match="Au not known"):
        atoms.get_potential_energy()
    with pytest.raises(ValueError, match="dtype"):
        Calculator(trained_run / "best.pt", dtype="half")


def test_nve_molecular_dynamics_conserves_energy(trained_run, atoms):
    from ase import units
    from ase.md import velocitydistribution
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = Calculator(trained_run / "best.pt", dtype="float64")
    thermalize = getattr(velocitydistribution, "thermalize_momenta", velocitydistribution.MaxwellBoltzmannDistribution)
    thermalize(atoms, temperature_K=600, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, timestep=2.0 * units.fs)
    totals, kinetic = [], []

    def record():
        totals.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
        kinetic.append(atoms.get_kinetic_energy())

    dynamics.attach(record, interval=5)
    dynamics.run(100)
    totals = np.array(totals)
    drift = np.abs(totals - totals[0]).max() / len(atoms)
    assert np.ptp(kinetic) > 10 * drift * len(atoms)  # the atoms really moved and exchanged energy
    assert drift < 1e-3, f"total energy drifted by {1000 * drift:.3f} meV/atom over 100 steps"
