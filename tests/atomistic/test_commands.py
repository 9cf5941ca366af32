"""The command-line path: data emt -> train potential -> evaluate potential, and its errors."""
from __future__ import annotations

import json

import pytest

from equiscale import cli

NAME = "equiscale.atomistic.commands"


@pytest.fixture
def main(monkeypatch):
    """``equiscale.cli.main`` with the atomistic commands registered."""
    if NAME not in cli.APPLICATION_COMMANDS:
        monkeypatch.setattr(cli, "APPLICATION_COMMANDS", [*cli.APPLICATION_COMMANDS, NAME])
    return cli.main


def test_data_train_evaluate_end_to_end(tmp_path, main, capsys):
    data = tmp_path / "cu.xyz"
    assert main(["data", "emt", "--element", "Cu", "--size", "1", "--frames", "6", "--interval", "2",
                 "--temperature", "500", "--quiet", "--out", str(data)]) == 0
    assert "wrote 6 frames of 4 Cu atoms" in capsys.readouterr().out
    config = tmp_path / "tiny.yaml"
    config.write_text("lmax: 1\nchannels: 4\nlayers: 1\ncutoff: 3.0\nnum_radial_basis: 4\nradial_hidden: 8\nreadout_hidden: 4\n"
                      "batch_size: 2\nvalid_fraction: 0.34\n")
    run = tmp_path / "run"
    assert main(["train", "potential", "--data", str(data), "--config", str(config), "--epochs", "2", "--quiet", "--out", str(run)]) == 0
    assert "stopped after 2 epochs" in capsys.readouterr().out
    assert main(["train", "potential", "--data", str(data), "--epochs", "3", "--quiet", "--out", str(run), "--resume"]) == 0
    assert "stopped after 3 epochs" in capsys.readouterr().out
    assert len(json.loads((run / "history.json").read_text())) == 3
    plot, metrics = tmp_path / "parity.png", tmp_path / "metrics.json"
    assert main(["evaluate", "potential", str(run / "best.pt"), "--data", str(data), "--plot", str(plot), "--json", str(metrics)]) == 0
    printed = capsys.readouterr().out
    assert "force_mae" in printed and "meV/A" in printed
    values = json.loads(metrics.read_text())
    assert values["structures"] == 6 and values["force_mae"] > 0 and values["energy_mae"] >= 0 and "stress_mae" in values
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_errors_exit_with_status_2(tmp_path, main, capsys):
    assert main(["train", "potential", "--data", str(tmp_path / "missing.xyz"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.xyz does not exist" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("layerz: 3\n")
    assert main(["train", "potential", "--data", "x.xyz", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert "unknown setting(s) layerz" in capsys.readouterr().err
    assert main(["data", "emt", "--element", "Fe", "--out", str(tmp_path / "fe.xyz")]) == 2
    assert "EMT has parameters" in capsys.readouterr().err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert main(["evaluate", "potential", str(broken), "--data", "x.xyz"]) == 2
    assert "broken.pt cannot be read" in capsys.readouterr().err
    assert main(["train", "potential", "--data", "x.xyz", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "last.pt does not exist" in capsys.readouterr().err
