"""`equiscale train fluid` / `evaluate fluid` end to end on a tiny data set: runs, resume, report, figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from equiscale import cli
from equiscale.continuum.app import APPLICATION
from equiscale.continuum.data import FluidData, generate_fluid, save_fluid


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fluid")
    generate_fluid(folder / "train.npz", trajectories=4, steps=6, resolution=8, progress=False)
    generate_fluid(folder / "test.npz", trajectories=1, steps=6, resolution=8, seed=5, progress=False)
    return folder


@pytest.fixture
def run_cli():
    return lambda *args: cli.main([str(a) for a in args], applications=[APPLICATION])


COMMON = ("--width", "2", "--blocks", "1", "--kernel-size", "3", "--validation-trajectories", "1", "--quiet",
          "--batch-size", "8", "--threads", "1")


def test_train_resume_and_evaluate(tiny, tmp_path, run_cli):
    _train_resume_and_evaluate(tiny, tmp_path, run_cli, models=(("gcnn", "1"), ("cnn", "0.3")), figures=False)


@pytest.mark.slow
def test_train_resume_and_evaluate_with_figures(tiny, tmp_path, run_cli):
    pytest.importorskip("matplotlib")
    _train_resume_and_evaluate(tiny, tmp_path, run_cli, models=(("gcnn", "1"), ("cnn", "0.3"), ("cnn-aug", "1")),
                               figures=True)


def test_figures(tmp_path):
    pytest.importorskip("matplotlib")
    from equiscale.continuum import plots

    truth = np.random.default_rng(0).standard_normal((6, 8, 8))
    plots.plot_rollout(truth, truth + 0.1, [0, 2, 5], tmp_path / "rollout.png", title="x")
    plots.plot_rollout(np.stack([truth] * 3), np.stack([truth + 0.1] * 3), [0, 2, 5], tmp_path / "three.png")
    physics = {"k": [1, 2, 3], "times": [1, 5], "spectra": {"truth": [[1, 0.1, 0.01]] * 2, "a": [[1, 0.2, 0.0]] * 2},
               "enstrophy": {"truth": [1.0, 0.9, 0.8], "a": [1.0, 1.1, 1.3]}}
    plots.plot_spectra(physics, tmp_path / "spectra.png")
    plots.plot_enstrophy(physics, tmp_path / "enstrophy.png")
    plots.plot_error_curves({"a": np.linspace(0.1, 1, 5), "persistence": np.ones(5)}, tmp_path / "curve.png")
    plots.plot_data_efficiency([{"model": "gcnn", "fraction": f, "rollout_5": 1 / f} for f in (0.1, 1.0)],
                               tmp_path / "efficiency.png", metric="rollout_5", reference=2.0)
    for name in ("rollout.png", "three.png", "curve.png", "efficiency.png", "spectra.png", "enstrophy.png"):
        assert (tmp_path / name).stat().st_size > 1000


def _train_resume_and_evaluate(tiny, tmp_path, run_cli, models, figures):
    runs = []
    for model, fraction in models:
        out = tmp_path / f"{model}_{fraction}"
        assert run_cli("train", "fluid", "--data", tiny / "train.npz", "--model", model, "--out", out,
                       "--epochs", "1", "--fraction", fraction, *COMMON) == 0
        runs.append(out)
    history = json.loads((runs[0] / "history.json").read_text())
    assert len(history) == 1 and (runs[0] / "best.pt").exists()
    assert run_cli("train", "fluid", "--data", tiny / "train.npz", "--model", "gcnn", "--out", runs[0],
                   "--epochs", "2", "--resume", *COMMON) == 0
    assert len(json.loads((runs[0] / "history.json").read_text())) == 2
    config = json.loads((runs[1] / "config.json").read_text())
    assert config["train_trajectories"] == [0] and config["validation_trajectories"] == [3]

    report = tmp_path / "report"
    assert run_cli("evaluate", "fluid", *runs, "--data", tiny / "test.npz", "--rollout", "5", "--out", report,
                   "--quiet", *(() if figures else ("--no-figures",))) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    rows = {row["run"]: row for row in metrics["runs"]}
    assert rows["gcnn_1"]["equivariance_1"] < 1e-5 and rows["cnn_0.3"]["equivariance_1"] > 1e-4
    assert all(0 < row["rollout_5"] < 10 for row in rows.values())
    assert "| gcnn_1 | gcnn C4 |" in (report / "report.md").read_text()
    assert all({"horizon_0.5", "horizon_persistence"} <= set(row) for row in rows.values())
    physics = metrics["physics"]
    assert physics["times"] == [1, 5] and len(physics["k"]) == 4 and set(physics["spectra"]) == {"truth", *rows}
    assert all(len(values) == 6 for values in physics["enstrophy"].values())
    if figures:
        for name in ("rollout_error.png", "data_efficiency.png", "rollout_gcnn_1.png", "rollout_cnn-aug_1.png",
                     "spectra.png", "enstrophy.png"):
            assert (report / name).stat().st_size > 1000


def test_resume_refuses_changed_settings_and_fresh_runs_refuse_overwrite(tiny, tmp_path, run_cli, capsys):
    out = tmp_path / "run"
    args = ("train", "fluid", "--data", tiny / "train.npz", "--model", "cnn", "--out", out, "--epochs", "1", *COMMON)
    assert run_cli(*args) == 0
    assert run_cli(*args) == 2 and "already holds a training run" in capsys.readouterr().err
    assert run_cli(*args, "--resume", "--fraction", "0.5") == 2
    assert "different settings: fraction" in capsys.readouterr().err
    assert run_cli("train", "fluid", "--data", tiny / "train.npz", "--model", "cnn", "--out", tmp_path / "none",
                   "--resume", *COMMON) == 2


def test_evaluate_rejects_too_short_trajectories_and_nan_data(tiny, tmp_path, run_cli, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "fluid", "--data", tiny / "train.npz", "--model", "cnn", "--out", out, "--epochs", "1",
                   *COMMON) == 0
    assert run_cli("evaluate", "fluid", out, "--data", tiny / "test.npz", "--rollout", "25", "--no-figures") == 2
    assert "too short for a 25-step rollout" in capsys.readouterr().err
    w = np.ones((2, 3, 8, 8), np.float32)
    w[0, 1, 2, 3] = np.nan
    save_fluid(tmp_path / "nan.npz", FluidData(w))
    assert run_cli("evaluate", "fluid", out, "--data", tmp_path / "nan.npz", "--rollout", "1") == 2
    assert "NaN" in capsys.readouterr().err


def test_a_run_is_evaluated_at_another_resolution(tiny, tmp_path, run_cli):
    out = tmp_path / "run"
    assert run_cli("train", "fluid", "--data", tiny / "train.npz", "--model", "gcnn", "--out", out, "--epochs", "1",
                   *COMMON) == 0
    generate_fluid(tmp_path / "fine.npz", trajectories=1, steps=3, resolution=16, seed=7, progress=False)
    assert run_cli("evaluate", "fluid", out, "--data", tmp_path / "fine.npz", "--rollout", "3", "--out", tmp_path / "r",
                   "--no-figures", "--quiet") == 0
    report = (tmp_path / "r" / "report.md").read_text()
    assert "16x16" in report and "trained at another resolution (8x8)" in report
    row = json.loads((tmp_path / "r" / "metrics.json").read_text())["runs"][0]
    assert row["trained_resolution"] == 8 and row["equivariance_1"] < 1e-5
