"""`train fluid` through the shared settings and engine: bad data refused before anything is written,
the time budget without --epochs, --ema-decay in the checkpoint header, --resume with the header's
settings, --quiet keeping the epoch lines, and the settings classes themselves."""
from __future__ import annotations

import json

import numpy as np
import pytest

from equiscale import cli
from equiscale.continuum.app import APPLICATION
from equiscale.continuum.data import generate_fluid
from equiscale.continuum.settings import EvaluateFluid, TrainFluid
from equiscale.continuum.training import load_run
from equiscale.train import load_checkpoint

TINY = ("--width", "2", "--blocks", "1", "--kernel-size", "3", "--validation-trajectories", "1", "--batch-size", "8",
        "--threads", "1")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("fluid") / "train.npz"
    generate_fluid(path, trajectories=3, steps=4, resolution=8, progress=False)
    return path


def run_cli(*args) -> int:
    return cli.main([str(a) for a in args], applications=[APPLICATION])


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("arrays, message", [
    ({"omega": np.zeros((2, 3, 8, 8), np.float32)}, "has no 'vorticity' array"),
    ({"vorticity": np.full((2, 3, 8, 8), np.nan, np.float32)}, "no finite value"),
])
def test_data_without_usable_vorticity_is_one_line_and_creates_nothing(tmp_path, capsys, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    out = tmp_path / "run"
    assert run_cli("train", "fluid", "--data", path, "--out", out, "--epochs", "1", *TINY) == 2
    assert message in _error(capsys)
    assert not out.exists()


def test_a_time_budget_without_epochs_trains_until_the_budget(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(TrainFluid, "default_epochs", 1)  # were the default used, one epoch would be all
    out = tmp_path / "run"
    assert run_cli("train", "fluid", "--data", data, "--out", out, "--model", "cnn", "--max-time", "0.3", "--quiet",
                   *TINY) == 0
    assert "(max_time)" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert len(history) > 1 and history[-1]["time"] >= 0.3


def test_ema_decay_is_stored_and_used_and_quiet_keeps_the_epoch_lines(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "fluid", "--data", data, "--out", out, "--model", "cnn", "--epochs", "2",
                   "--ema-decay", "0.9", "--quiet", *TINY) == 0
    printed = capsys.readouterr()
    assert "epoch 1" in printed.out and "epoch 2" in printed.out  # the record of what happened
    assert "\r" not in printed.err  # but no progress bar
    for name in ("last.pt", "best.pt"):
        state = load_checkpoint(out / name, kind="fluid")
        assert state["header"]["settings"]["ema_decay"] == 0.9 and state["ema"] is not None
        assert state["header"]["statistics"]["resolution"] == 8
    model, record = load_run(out)
    state = load_checkpoint(out / "best.pt")
    for name, value in model.state_dict().items():  # the run's model is the weight average
        assert np.array_equal(value.numpy(), state["ema"][name].numpy()), name
    assert record["train"]["ema_decay"] == 0.9 and record["parameters"] > 0


def test_resume_continues_with_the_settings_in_the_header(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "fluid", "--data", data, "--out", out, "--model", "cnn", "--width", "3", "--epochs", "1",
                   "--lr", "0.01", *TINY[2:], "--quiet") == 0
    (out / "config.json").unlink()  # the header alone carries the settings
    assert run_cli("train", "fluid", "--out", out, "--resume", "--epochs", "2", "--quiet") == 0
    settings = load_checkpoint(out / "last.pt", kind="fluid")["header"]["settings"]
    assert settings["model"] == "cnn" and settings["width"] == 3 and settings["lr"] == 0.01
    assert settings["epochs"] == 2 and settings["data"] == str(data)
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
    capsys.readouterr()
    assert run_cli("train", "fluid", "--out", out, "--resume", "--width", "5") == 2
    assert "cannot resume" in _error(capsys)


def test_a_checkpoint_of_another_kind_is_named(data, tmp_path, capsys):
    import torch

    from equiscale.train import CheckpointHeader

    torch.save({"header": CheckpointHeader("potential", {}, {}).as_dict(), "model": {}}, tmp_path / "other.pt")
    report = tmp_path / "report"
    assert run_cli("evaluate", "fluid", tmp_path / "other.pt", "--data", data, "--out", report, "--rollout", "2") == 2
    assert "holds a 'potential' checkpoint, not a 'fluid' one" in _error(capsys)
    assert not report.exists()


def test_settings_are_validated_and_state_their_defaults():
    with pytest.raises(ValueError, match="setting 'fraction'"):
        TrainFluid(fraction=1.5)
    with pytest.raises(ValueError, match="setting 'model'"):
        TrainFluid(model="transformer")
    assert TrainFluid().max_epochs == 1000 and TrainFluid(max_time=10).max_epochs is None
    assert TrainFluid(model="cnn").run_dir == "runs/fluid-cnn" and TrainFluid().ema_decay is None
    assert TrainFluid().clock == "wall"
    assert EvaluateFluid(runs=["a"], data="x.npz").figures  # figures by default, --no-figures to skip
