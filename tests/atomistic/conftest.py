"""Shared fixtures: small EMT copper data and small potentials (fast on 2 CPU cores)."""
from __future__ import annotations

import importlib.util

import pytest
import torch

# The atomistic scale needs the `atoms` extra (ase, vesin) and pyyaml/matplotlib; without them
# these tests are not collected (install `.[atoms,plot,test]`).
if any(importlib.util.find_spec(name) is None for name in ("ase", "vesin", "yaml", "matplotlib")):
    collect_ignore_glob = ["test_*.py"]

from equiscale.atomistic import AtomicDataset, collate, emt_frames, structure_graph
from equiscale.atomistic.model import EquivariantPotential

CUTOFF = 4.0


@pytest.fixture(scope="session")
def emt_structures():
    """Eight frames of 32-atom fcc copper (2x2x2 conventional cells) at 800 K, from ASE's EMT."""
    return emt_frames("Cu", size=2, frames=8, temperature=800.0, interval=3, seed=1)


@pytest.fixture(scope="session")
def emt_dataset(emt_structures):
    return AtomicDataset(emt_structures, CUTOFF)


def small_potential(stats: dict | None = None, dtype: torch.dtype = torch.float64, seed: int = 0, **options) -> EquivariantPotential:
    """A small potential (8 channels, lmax 2, 2 layers) for fast tests."""
    torch.manual_seed(seed)
    stats = stats or {"elements": [29], "reference_energies": {29: -0.3}, "force_rms": 0.6, "avg_num_neighbors": 20.0}
    settings = dict(lmax=2, channels=8, layers=2, cutoff=CUTOFF, num_radial_basis=6, radial_hidden=16, readout_hidden=8)
    settings.update(options)
    model = EquivariantPotential(stats["elements"], avg_num_neighbors=stats["avg_num_neighbors"],
                                 reference_energies=stats["reference_energies"], energy_scale=stats["force_rms"], **settings)
    return model.to(dtype)


def predict(model: EquivariantPotential, structure, stress: bool = False) -> dict:
    """The model's energy, forces (and stress) for one structure, detached."""
    dtype = model.embedding.weight.dtype
    batch = collate([structure_graph(structure, model.cutoff)], dtype)
    return {k: v.detach() for k, v in model(batch, stress=stress).items()}


TINY = dict(lmax=1, channels=4, layers=2, cutoff=3.0, num_radial_basis=4, radial_hidden=8, readout_hidden=4)


@pytest.fixture(scope="session")
def emt_file(tmp_path_factory, emt_structures):
    from equiscale.atomistic import write_structures

    path = tmp_path_factory.mktemp("emt") / "cu.xyz"
    write_structures(path, emt_structures)
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, emt_file):
    """A tiny potential trained for a few epochs on the EMT frames: its run directory."""
    from equiscale.atomistic.training import TrainSettings, train_potential

    out = tmp_path_factory.mktemp("run") / "tiny"
    train_potential(TrainSettings(data=str(emt_file), out=str(out), epochs=4, batch_size=2, lr=1e-2, progress=False, **TINY))
    return out
