"""The fields application: its declaration, settings, checkpoint headers and `equiscale check` of trained models."""
from __future__ import annotations

import pytest
import torch

from equiscale import cli
from equiscale.applications import discover
from equiscale.check import CheckOptions, checkpoint_checks, measure_checks
from equiscale.continuum.data import generate_fluid
from equiscale.fields.app import APPLICATION
from equiscale.fields.settings import TrainEfield, TrainVelocity
from equiscale.train import load_checkpoint


def test_the_application_is_declared_and_discovered():
    assert APPLICATION in discover()
    commands = {(c.verb, c.task): c for c in APPLICATION.commands}
    assert commands[("train", "velocity")].settings is TrainVelocity
    assert commands[("train", "efield")].settings is TrainEfield
    assert {k.kind for k in APPLICATION.checkpoints} == {"velocity", "efield"}
    assert (APPLICATION.demo.name, APPLICATION.demo.order) == ("steerable", 30)


def test_settings_keep_the_commands_defaults_and_refuse_bad_values():
    settings = TrainEfield(out="runs/x")
    assert (settings.clock, settings.threads, settings.seed, settings.ema_decay) == ("process", 1, 0, None)
    assert settings.samples is None and settings.max_time is None and not settings.quick
    with pytest.raises(ValueError, match="'samples'"):
        TrainEfield(out="runs/x", samples=0)
    with pytest.raises(ValueError, match="--data"):
        TrainVelocity(out="runs/x")


@pytest.fixture(scope="module")
def efield_run(tmp_path_factory):
    """One quick `equiscale train efield` with a weight average, through the command line."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("efield") / "run"
    status = cli.main(["train", "efield", "--out", str(out), "--quick", "--quiet", "--samples", "6", "--max-time", "1",
                       "--ema-decay", "0.5"])
    assert status == 0
    return out


def test_figures_are_written_by_default_and_skipped_on_request(efield_run, tmp_path, capsys):
    assert (efield_run / "efield_slice.png").is_file() and "![slice](efield_slice.png)" in (efield_run / "report.md").read_text()
    out = tmp_path / "plain"
    assert cli.main(["train", "efield", "--out", str(out), "--quick", "--quiet", "--samples", "6", "--max-time", "1",
                     "--no-figures"]) == 0
    assert "and 0 figures" in capsys.readouterr().out
    assert not list(out.glob("*.png")) and "![" not in (out / "report.md").read_text()


def test_a_budget_without_epochs_trains_until_the_budget(efield_run):
    """--quick alone stops after the preset's 2 epochs; --max-time without --epochs trains until the budget."""
    import json

    rows = json.loads((efield_run / "metrics.json").read_text())["rows"]
    assert all(row["epochs"] > 2 for row in rows), [row["epochs"] for row in rows]


def test_field_checkpoints_carry_the_header(efield_run):
    for name in ("steerable", "cnn", "cnn-wide"):
        for file in ("best.pt", "last.pt"):
            state = load_checkpoint(efield_run / name / file, kind="efield")
            header = state["header"]
            assert header["settings"]["samples"] == 6 and header["settings"]["ema_decay"] == 0.5
            assert header["statistics"]["resolution"] == 8 and header["statistics"]["field_scale"] > 0
            assert "ema" in state and state["extra"]["model"] == name
    with pytest.raises(ValueError, match="not a 'velocity' one"):
        load_checkpoint(efield_run / "steerable" / "best.pt", kind="velocity")


def test_check_of_a_trained_efield_model_is_exact_in_float64(efield_run, capsys):
    description, checks = checkpoint_checks(efield_run / "steerable", CheckOptions(samples=3))
    assert "'steerable'" in description and "8^3" in description
    (result,) = measure_checks(checks)
    assert result.float64 < 1e-10 and result.float32 < 1e-4
    (plain,) = measure_checks(checkpoint_checks(efield_run / "cnn", CheckOptions(samples=3))[1])
    assert plain.float64 > 1e-4
    assert cli.main(["check", str(efield_run / "steerable"), "--tolerance", "1e-10"]) == 0
    assert "cube rotations" in capsys.readouterr().out


def test_check_of_trained_velocity_models(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data = tmp_path / "fluid.npz"
    generate_fluid(data, trajectories=4, steps=5, resolution=8, progress=False)
    out = tmp_path / "velocity"
    assert cli.main(["train", "velocity", "--data", str(data), "--out", str(out), "--quick", "--quiet",
                     "--max-time", "0.5"]) == 0
    assert load_checkpoint(out / "gcnn" / "best.pt", kind="velocity")["header"]["statistics"]["resolution"] == 8
    errors = {}
    for name in ("steerable", "gcnn", "cnn"):
        _, checks = checkpoint_checks(out / name, CheckOptions(samples=3, rollout=3))
        assert len(checks) == 2  # one step and a 3-step rollout
        errors[name] = measure_checks(checks)
    assert all(r.float64 < 1e-10 for name in ("steerable", "gcnn") for r in errors[name])
    assert errors["cnn"][0].float64 > 1e-4
    capsys.readouterr()


def test_resume_refuses_other_settings_and_continues_with_the_saved_ones(efield_run, capsys):
    assert cli.main(["train", "efield", "--out", str(efield_run), "--quiet", "--samples", "7", "--resume"]) == 2
    assert "different settings" in capsys.readouterr().err
    before = torch.load(efield_run / "steerable" / "last.pt", weights_only=False)["step"]
    # the saved settings (--quick, 6 samples, the average) come back; a larger budget is allowed
    assert cli.main(["train", "efield", "--out", str(efield_run), "--quiet", "--resume", "--max-time", "1.5"]) == 0
    assert torch.load(efield_run / "steerable" / "last.pt", weights_only=False)["step"] >= before
