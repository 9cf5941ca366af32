"""The command-line path: data emt -> train potential -> evaluate potential, its errors and rough edges."""
from __future__ import annotations

import json

import numpy as np
import pytest

from equiscale import cli

from .conftest import TINY

TINY_YAML = "".join(f"{key}: {value}\n" for key, value in TINY.items())


def test_data_train_evaluate_end_to_end(tmp_path, capsys):
    data = tmp_path / "cu.xyz"
    assert cli.main(["data", "emt", "--element", "Cu", "--size", "1", "--frames", "6", "--interval", "2",
                     "--temperature", "500", "--quiet", "--out", str(data)]) == 0
    assert "wrote 6 frames of 4 Cu atoms" in capsys.readouterr().out
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML + "batch_size: 2\nvalid_fraction: 0.34\n")
    run = tmp_path / "run"
    assert cli.main(["train", "potential", "--data", str(data), "--config", str(config), "--epochs", "2", "--quiet",
                     "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "stopped after 2 epochs" in printed
    assert printed.count("epoch 1/2") == 1 and "epoch 2/2" in printed  # --quiet keeps the epoch lines
    assert "val[ema]" in printed  # the line says which weights the validation columns are
    assert cli.main(["train", "potential", "--epochs", "3", "--quiet", "--out", str(run), "--resume"]) == 0
    assert "stopped after 3 epochs" in capsys.readouterr().out
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 3 and {"energy_mae", "energy_mae_per_atom", "val_energy_mae"} <= history[0].keys()
    metrics = tmp_path / "metrics.json"
    assert cli.main(["evaluate", "potential", str(run / "best.pt"), "--data", str(data), "--json", str(metrics)]) == 0
    printed = capsys.readouterr().out
    assert "force_mae" in printed and "meV/A" in printed and "meV/atom" in printed
    values = json.loads(metrics.read_text())
    assert values["structures"] == 6 and values["force_mae"] > 0 and "stress_mae" in values
    assert values["energy_mae"] == pytest.approx(4 * values["energy_mae_per_atom"])  # 4 atoms per structure
    # the parity plot is written by default, beside the checkpoint
    assert (run / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"parity plot: {run / 'parity.png'}" in printed


def test_evaluate_writes_the_parity_plot_where_asked_or_not_at_all(trained_run, emt_file, tmp_path, capsys):
    plot = tmp_path / "plots" / "mine.png"
    assert cli.main(["evaluate", "potential", str(trained_run / "best.pt"), "--data", str(emt_file),
                     "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["evaluate", "potential", str(trained_run / "best.pt"), "--data", str(emt_file),
                     "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "parity.png").is_file()
    before = sorted(p.name for p in trained_run.iterdir())
    capsys.readouterr()
    assert cli.main(["evaluate", "potential", str(trained_run / "best.pt"), "--data", str(emt_file), "--no-figures"]) == 0
    assert "parity plot" not in capsys.readouterr().out
    assert sorted(p.name for p in trained_run.iterdir()) == before


def _write_unlabelled(path, structures, nan: bool = False) -> None:
    from ase.io import write

    frames = []
    for structure in structures:
        atoms = structure.to_atoms()
        atoms.calc = None
        if nan:  # labels written as NaN: unknown
            atoms.info["energy"] = float("nan")
            atoms.arrays["forces"] = np.full((len(atoms), 3), np.nan)
        frames.append(atoms)
    write(path, frames, format="extxyz")


@pytest.mark.parametrize("nan", [False, True], ids=["absent", "all-NaN"])
def test_structures_without_labels_are_refused_before_anything_is_written(tmp_path, emt_structures, capsys, nan):
    data = tmp_path / "bare.xyz"
    _write_unlabelled(data, emt_structures[:3], nan=nan)
    run = tmp_path / "run"
    assert cli.main(["train", "potential", "--data", str(data), "--epochs", "1", "--out", str(run)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "bare.xyz has no energies and no forces" in lines[0]
    assert "Traceback" not in captured.err
    assert not run.exists()


def test_missing_forces_alone_name_the_setting_that_allows_it(tmp_path, emt_structures, capsys):
    from equiscale.atomistic import AtomicStructure, write_structures

    energies_only = [AtomicStructure(s.positions, s.numbers, s.cell, s.pbc, energy=s.energy) for s in emt_structures[:3]]
    data = tmp_path / "energies.xyz"
    write_structures(data, energies_only)
    run = tmp_path / "run"
    assert cli.main(["train", "potential", "--data", str(data), "--epochs", "1", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "energies.xyz has no forces" in err and "force_weight: 0" in err and not run.exists()


def test_user_errors_exit_with_status_2(tmp_path, capsys):
    assert cli.main(["train", "potential", "--data", str(tmp_path / "missing.xyz"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.xyz does not exist" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("layerz: 3\n")
    assert cli.main(["train", "potential", "--data", "x.xyz", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert "unknown setting(s) layerz" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # a bad option value is a usage error: one line, status 2
        cli.main(["data", "emt", "--element", "Fe", "--out", str(tmp_path / "fe.xyz")])
    assert usage.value.code == 2 and "EMT has parameters" in capsys.readouterr().err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert cli.main(["evaluate", "potential", str(broken), "--data", "x.xyz"]) == 2
    assert "broken.pt cannot be read: it is not an equiscale checkpoint" in capsys.readouterr().err
    assert cli.main(["train", "potential", "--data", "x.xyz", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "last.pt does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli.main(["train", "potential", "--data", "x.xyz", "--lr", "-1"])
    assert usage.value.code == 2 and "--lr: must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
