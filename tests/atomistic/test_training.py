"""Training: loss goes down, exact resume, EMA, atomic checkpoints, bad checkpoints, settings, the
time budget without an epoch limit, and energy errors per atom and per structure (molecules)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from equiscale.atomistic import load_potential
from equiscale.atomistic.training import TrainSettings, load_settings, train_potential

from .conftest import TINY


def _settings(data, out, **kwargs):
    options = dict(data=str(data), out=str(out), epochs=2, batch_size=2, lr=1e-2, progress=False, **TINY)
    options.update(kwargs)
    return TrainSettings(**options)


def test_training_lowers_the_loss_and_writes_checkpoints(trained_run):
    history = json.loads((trained_run / "history.json").read_text())
    assert len(history) == 4
    assert history[-1]["loss"] < history[0]["loss"]
    assert {"force_mae", "energy_mae", "energy_mae_per_atom", "stress_mae", "val_force_mae"} <= history[0].keys()
    # 32 atoms per structure: the per-structure error is larger than the per-atom one
    assert history[0]["energy_mae"] > history[0]["energy_mae_per_atom"]
    assert (trained_run / "last.pt").is_file() and (trained_run / "best.pt").is_file()
    model = load_potential(trained_run / "best.pt")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert load_potential(trained_run / "best.pt", dtype="float64").embedding.weight.dtype == torch.float64


def test_checkpoints_hold_the_moving_average(trained_run):
    state = torch.load(trained_run / "last.pt", weights_only=False)
    assert state["header"]["kind"] == "potential" and state["header"]["settings"]["ema_decay"] == 0.99
    assert state["ema_updates"] == state["step"] > 0
    key = "embedding.weight"
    assert not torch.equal(state["ema"][key], state["model"][key])
    assert torch.equal(load_potential(trained_run / "last.pt").embedding.weight, state["ema"][key])
    assert torch.equal(load_potential(trained_run / "last.pt", ema=False).embedding.weight, state["model"][key])


def test_without_a_weight_average_the_trained_weights_are_used(tmp_path, emt_file):
    train_potential(_settings(emt_file, tmp_path / "run", epochs=1, ema_decay=None))
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert "ema" not in state
    assert torch.equal(load_potential(tmp_path / "run" / "best.pt").embedding.weight, state["model"]["embedding.weight"])


def test_resume_continues_exactly(tmp_path, emt_file):
    straight = train_potential(_settings(emt_file, tmp_path / "a", epochs=2))
    train_potential(_settings(emt_file, tmp_path / "b", epochs=1))
    resumed = train_potential(_settings(emt_file, tmp_path / "b", epochs=2), resume=True)
    assert resumed["epochs"] == 2 and resumed["steps"] == straight["steps"]
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="already holds a training run"):
        train_potential(_settings(emt_file, tmp_path / "a", epochs=3))


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, emt_file, monkeypatch):
    train_potential(_settings(emt_file, tmp_path / "run", epochs=1))
    before = (tmp_path / "run" / "last.pt").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        train_potential(_settings(emt_file, tmp_path / "run", epochs=2), resume=True)
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")] == []
    load_potential(tmp_path / "run" / "last.pt")


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path, trained_run):
    data = (trained_run / "best.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pt cannot be read"):
        load_potential(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(ValueError, match="foreign.pt is not an equiscale checkpoint: it has no header"):
        load_potential(foreign)
    with pytest.raises(FileNotFoundError):
        load_potential(tmp_path / "missing.pt")


def test_settings_from_yaml_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("channels: 16\nlmax: 1\nforce_weight: 10.0\nepochs: 7\n")
    settings = load_settings(path, epochs=3, data="x.xyz", out="o", valid=None)
    assert (settings.channels, settings.lmax, settings.force_weight, settings.epochs) == (16, 1, 10.0, 3)
    path.write_text("chanels: 16\n")
    with pytest.raises(ValueError, match="unknown setting.*chanels"):
        load_settings(path)
    with pytest.raises(ValueError, match="dtype"):
        load_settings(None, data="x.xyz", dtype="float16")
    with pytest.raises(ValueError, match="loss weights"):
        load_settings(None, data="x.xyz", energy_weight=0.0, force_weight=0.0, stress_weight=0.0)
    with pytest.raises(ValueError, match="no training data"):
        train_potential(TrainSettings(out="o"))


def test_a_time_budget_without_epochs_trains_until_the_budget(tmp_path, emt_file, monkeypatch):
    monkeypatch.setattr(TrainSettings, "default_epochs", 1)  # an epoch limit, were it applied, would stop at 1
    settings = _settings(emt_file, tmp_path / "run", epochs=None, max_time=1.5, clock="process")
    assert settings.max_epochs is None
    summary = train_potential(settings)
    assert summary["stop_reason"] == "max_time" and summary["epochs"] > 1
    assert summary["train_time"] >= 1.5
    assert _settings(emt_file, tmp_path / "other", epochs=None).max_epochs == 1  # no budget: the default


def _molecules():
    """Two molecules of different sizes in vacuum, labelled by ASE's EMT (H, C, O are in its table)."""
    from ase.build import molecule
    from ase.calculators.emt import EMT

    from equiscale.atomistic import AtomicStructure

    structures = []
    for name in ("H2O", "CH4"):
        atoms = molecule(name)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces()
        structures.append(AtomicStructure.from_atoms(atoms))
    return structures


def test_energy_errors_per_atom_and_per_molecule():
    from equiscale.atomistic import collate, structure_graph
    from equiscale.atomistic.evaluate import error_metrics, predict_dataset
    from equiscale.atomistic.loss import LossWeights, potential_loss

    from .conftest import predict, small_potential

    molecules = _molecules()
    assert [len(m) for m in molecules] == [3, 5] and all(m.stress is None for m in molecules)
    model = small_potential({"elements": [1, 6, 8], "reference_energies": {1: 0.5, 6: 1.0, 8: -0.2},
                             "force_rms": 1.0, "avg_num_neighbors": 3.0})
    # the errors computed by hand, one molecule at a time
    errors = np.array([float(predict(model, m)["energy"]) - m.energy for m in molecules])
    sizes = np.array([len(m) for m in molecules])
    per_molecule, per_atom = 1000 * np.abs(errors).mean(), 1000 * np.abs(errors / sizes).mean()
    assert abs(per_molecule - per_atom) > 1e-3  # different sizes: the two really differ

    metrics = error_metrics(predict_dataset(model, molecules, batch_size=2))
    assert metrics["energy_mae"] == pytest.approx(per_molecule, rel=1e-10)
    assert metrics["energy_mae_per_atom"] == pytest.approx(per_atom, rel=1e-10)
    assert metrics["structures"] == 2 and metrics["atoms"] == 8 and "stress_mae" not in metrics

    batch = collate([structure_graph(m, model.cutoff) for m in molecules], torch.float64)
    _, logged = potential_loss(model(batch), batch, LossWeights())
    assert logged["energy_mae"] == pytest.approx(per_molecule, rel=1e-8)
    assert logged["energy_mae_per_atom"] == pytest.approx(per_atom, rel=1e-8)
