"""Training: loss goes down, exact resume, EMA, atomic checkpoints, bad checkpoints and settings."""
from __future__ import annotations

import json

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
    assert {"force_mae", "energy_mae", "stress_mae", "val_force_mae"} <= history[0].keys()
    assert (trained_run / "last.pt").is_file() and (trained_run / "best.pt").is_file()
    model = load_potential(trained_run / "best.pt")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert load_potential(trained_run / "best.pt", dtype="float64").embedding.weight.dtype == torch.float64


def test_checkpoints_hold_the_moving_average(trained_run):
    state = torch.load(trained_run / "last.pt", weights_only=False)
    assert int(state["model"]["num_updates"]) == state["step"] > 0
    key = "embedding.weight"
    assert not torch.equal(state["model"][f"ema.{key}"], state["model"][f"model.{key}"])
    assert torch.equal(load_potential(trained_run / "last.pt").embedding.weight, state["model"][f"ema.{key}"])
    assert torch.equal(load_potential(trained_run / "last.pt", ema=False).embedding.weight, state["model"][f"model.{key}"])


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
    with pytest.raises(ValueError, match="does not hold an equiscale potential"):
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
        load_settings(None, dtype="float16")
    with pytest.raises(ValueError, match="loss weights"):
        load_settings(None, energy_weight=0.0, force_weight=0.0, stress_weight=0.0)
