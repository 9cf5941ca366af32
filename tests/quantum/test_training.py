"""Training a Hamiltonian model: batches, statistics, the loss, augmentation that matches the model's
convention, a short run that learns, resume, the baseline, property terms, loading."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("pyscf")  # the tiny dataset is labelled with PySCF

from equiscale.quantum.baseline import augment  # noqa: E402
from equiscale.quantum.model import HamiltonianModel  # noqa: E402
from equiscale.quantum.settings import TrainHamiltonian  # noqa: E402
from equiscale.quantum.training import (build_model, collate, hamiltonian_loss, load_frames, load_hamiltonian,  # noqa: E402
                                        model_statistics, train_hamiltonian)

from .hamiltonian_data import water_dataset  # noqa: E402

TINY = dict(channels=4, pair_channels=2, radial_hidden=8, quiet=True, threads=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return water_dataset(tmp_path_factory.mktemp("dft"))


@pytest.fixture(scope="module")
def frames(data):
    return load_frames(data)


def test_collate_pads_and_statistics(frames):
    items, shells = frames
    batch = collate(items[:3], torch.float64)
    assert batch["fock"].shape == (3, 7, 7) and batch["num_orbitals"].tolist() == [7, 7, 7]
    assert batch["batch"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and batch["positions"].shape == (9, 3)
    stats = model_statistics(items, shells)
    assert set(stats["blocks"]) == {"1", "8", "1-1", "1-8", "8-8"} - {"8-8"}  # one O per molecule
    assert stats["probe"]["numbers"] == [8, 1, 1] and stats["shells"] == {"1": [0], "8": [0, 0, 1]}
    model = HamiltonianModel(shells, statistics=stats, **{k: v for k, v in TINY.items() if k in ("channels",)}).double()
    with torch.no_grad():
        energy = model(batch)["energy"]
    assert (energy - batch["energy"]).abs().max() < 0.5  # the references put it near -75 Ha


def test_loss_is_zero_for_the_truth_and_augmentation_matches_the_model(frames):
    items, shells = frames
    batch = collate(items[:2], torch.float64)
    perfect = {"hamiltonian": batch["fock"], "energy": batch["energy"], "dipole": batch["dipole"],
               "polarizability": batch["polarizability"]}
    weights = {"hamiltonian": 1.0, "energy": 1.0, "orbital": 1.0, "dipole": 1.0, "polarizability": 1.0}
    loss, metrics = hamiltonian_loss(perfect, batch, weights)
    assert float(loss) < 1e-14 and metrics["h_mae_uha"] == 0.0 and metrics["orbital_mae"] < 1e-7  # SCF convergence noise
    torch.manual_seed(0)
    model = HamiltonianModel(shells, channels=4, pair_channels=2, radial_hidden=8).double()
    rotated = augment(batch, shells, torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, _ = hamiltonian_loss(model(batch), batch, weights)
        b, _ = hamiltonian_loss(model(rotated), rotated, weights)
    assert abs(float(a) - float(b)) <= 1e-10 * float(a)  # the exactly equivariant model cannot tell


def test_train_learns_resumes_and_loads(data, tmp_path):
    out = tmp_path / "run"
    first = train_hamiltonian(TrainHamiltonian(data=str(data), out=str(out), epochs=6, lr=1e-2, **TINY))
    history = first["history"]
    assert history[-1]["val_h_mae_uha"] < 0.9 * history[0]["val_h_mae_uha"]
    again = train_hamiltonian(TrainHamiltonian(data=str(data), out=str(out), epochs=7, lr=1e-2, resume=True, **TINY))
    assert again["epochs"] == 7
    model, state = load_hamiltonian(out, "float64")
    assert isinstance(model, HamiltonianModel) and state["header"]["kind"] == "hamiltonian"
    assert next(model.parameters()).dtype == torch.float64 and not model.training


def test_baseline_and_property_terms(data, tmp_path):
    summary = train_hamiltonian(TrainHamiltonian(data=str(data), out=str(tmp_path / "b"), epochs=1, model="baseline",
                                                 energy_weight=1.0, orbital_weight=1.0, dipole_weight=0.1,
                                                 polarizability_weight=0.01, **TINY))
    metrics = summary["history"][-1]
    assert {"orbital_mae", "dipole_mae", "polarizability_mae", "energy_mae_per_atom"} <= set(metrics)
    model, state = load_hamiltonian(tmp_path / "b")
    equivariant = build_model({**state["header"]["settings"], "model": "equivariant"}, state["header"]["statistics"])
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0.7 < count(model) / count(equivariant) < 1.3  # "of similar size"


def test_bad_settings_and_data(tmp_path):
    with pytest.raises(ValueError, match="no training data"):
        train_hamiltonian(TrainHamiltonian(out=str(tmp_path / "x")))
    with pytest.raises(ValueError, match="must not all be zero"):
        TrainHamiltonian(data="x", hamiltonian_weight=0.0)
    with pytest.raises((FileNotFoundError, ValueError)):
        train_hamiltonian(TrainHamiltonian(data=str(tmp_path / "missing.dft"), out=str(tmp_path / "y")))
