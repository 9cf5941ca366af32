"""Committees of fluid surrogates: equivariant mean and spread, calibration, shifts, the CLI end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from equiscale import cli
from equiscale.continuum.app import APPLICATION
from equiscale.continuum.data import generate_fluid, load_fluid
from equiscale.continuum.models import build_model, parse_group
from equiscale.continuum.training import transform_fields
from equiscale.continuum.uncertainty import FluidCommittee, committee_rollout, uncertainty_metrics


def _committee(group: str, members: int = 3) -> FluidCommittee:
    models = []
    for seed in range(members):
        torch.manual_seed(seed)
        model = build_model("gcnn", group=group, width=2, blocks=1, kernel_size=3, field_scale=0.7, delta_scale=0.1)
        with torch.no_grad():  # random last layers: the members must disagree for the test to mean anything
            for parameter in model.parameters():
                parameter.add_(0.3 * torch.randn_like(parameter))
        models.append(model)
    return FluidCommittee(models).double().eval()


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_mean_and_spread_are_equivariant(group):
    committee = _committee(group)
    symmetry = parse_group(group)
    w0 = torch.randn(2, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    mean, spread = committee_rollout(committee, w0, steps=3)
    assert float(spread[:, 1:].abs().max()) > 1e-3 * float(mean[:, 1:].abs().max())  # the members disagree
    for g in range(1, symmetry.order):
        moved_mean, moved_spread = committee_rollout(committee, transform_fields(w0, symmetry, g), steps=3)
        # vorticity is a pseudo-scalar (a reflection flips its sign); the spread is a scalar field
        expected_spread = transform_fields(spread, symmetry, g).abs() if g >= symmetry.n else \
            transform_fields(spread, symmetry, g)
        assert torch.allclose(moved_mean, transform_fields(mean, symmetry, g), atol=1e-10, rtol=0)
        assert torch.allclose(moved_spread, expected_spread, atol=1e-10, rtol=0)


def test_spread_breaks_without_the_sign_of_reflections():
    """The test above can fail: a reflected spread with vorticity's sign flip is not the spread."""
    committee = _committee("D4")
    symmetry = parse_group("D4")
    w0 = torch.randn(1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    _, spread = committee_rollout(committee, w0, steps=1)
    _, moved = committee_rollout(committee, transform_fields(w0, symmetry, symmetry.n), steps=1)
    assert not torch.allclose(moved, transform_fields(spread, symmetry, symmetry.n), atol=1e-6)


def test_equivariance_in_float32():
    committee = _committee("C4").float()
    w0 = torch.randn(2, 12, 12, generator=torch.Generator().manual_seed(5))
    mean, spread = committee_rollout(committee, w0, steps=2)
    moved_mean, moved_spread = committee_rollout(committee, torch.rot90(w0, 1, dims=(-1, -2)), steps=2)
    assert torch.allclose(moved_mean, torch.rot90(mean, 1, dims=(-1, -2)), atol=1e-5 * float(mean.abs().max()))
    assert torch.allclose(moved_spread, torch.rot90(spread, 1, dims=(-1, -2)), atol=1e-5 * float(mean.abs().max()))


def test_calibration_recovers_a_known_scale():
    """Errors drawn with standard deviation 2.5 x spread: the fitted scale is 2.5, the ranking positive."""
    generator = torch.Generator().manual_seed(0)
    spread = torch.rand(40, 4, 12, 12, dtype=torch.float64, generator=generator) + 0.1
    truth = torch.randn(40, 4, 12, 12, dtype=torch.float64, generator=generator)
    mean = truth + 2.5 * spread * torch.randn(truth.shape, dtype=torch.float64, generator=generator)
    metrics = uncertainty_metrics(mean, spread, truth)
    assert metrics["scale"] == pytest.approx(2.5, rel=0.02)
    assert metrics["spearman"] > 0.3
    assert metrics["sigma_rms"] == pytest.approx(metrics["rmse"], rel=0.02)
    assert len(metrics["error_curve"]) == 3 and metrics["samples"] == 40 * 3 * 144


def test_calibration_of_a_committee_is_finite():
    committee = _committee("C4")
    vorticity = torch.randn(3, 5, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    mean, spread = committee_rollout(committee, vorticity[:, 0], steps=4)
    metrics = uncertainty_metrics(mean, spread, vorticity)
    assert math.isfinite(metrics["scale"]) and metrics["scale"] > 0
    assert math.isfinite(metrics["spearman"]) and math.isfinite(metrics["nll"])


@pytest.fixture
def run_cli():
    return lambda *args: cli.main([str(a) for a in args], applications=[APPLICATION])


def test_train_committee_then_evaluate_with_shifts(tmp_path, run_cli, capsys):
    _train_and_evaluate(tmp_path, run_cli, capsys, figures=False)


@pytest.mark.slow
def test_train_committee_then_evaluate_with_figures(tmp_path, run_cli, capsys):
    pytest.importorskip("matplotlib")
    out = _train_and_evaluate(tmp_path, run_cli, capsys, figures=True)
    for name in ("calibration_committee.png", "shifts_committee.png", "rollout_committee.png"):
        assert (out / name).stat().st_size > 1000


def _train_and_evaluate(tmp_path, run_cli, capsys, figures):
    generate_fluid(tmp_path / "train.npz", trajectories=4, steps=6, resolution=12, progress=False)
    generate_fluid(tmp_path / "test.npz", trajectories=2, steps=6, resolution=12, seed=5, progress=False)
    run = tmp_path / "committee"
    assert run_cli("train", "fluid", "--data", tmp_path / "train.npz", "--out", run, "--ensemble", 2, "--model", "gcnn",
                   "--width", 2, "--blocks", 1, "--kernel-size", 3, "--validation-trajectories", 1, "--val-rollout", 3,
                   "--epochs", 1, "--batch-size", 8, "--threads", 1, "--quiet") == 0
    assert (run / "committee.json").is_file() and (run / "member-1" / "best.pt").is_file()
    out = tmp_path / "report"
    assert run_cli("evaluate", "fluid", run, "--data", tmp_path / "test.npz", "--rollout", 3, "--out", out,
                   "--shifts", "viscosity", "rollout", "--shift-trajectories", 2, "--quiet", *(() if figures else ("--no-figures",))) == 0
    printed = capsys.readouterr().out
    assert "committee of 2" in printed and "in distribution" in printed and "viscosity x0.5" in printed
    assert "rollout 6 steps (2 x H=3)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    section = metrics["committees"]["committee"]
    assert [r["metrics"]["steps"] for r in section["rows"]] == [3, 3, 6]
    assert all(r["metrics"]["scale"] == section["scale"] for r in section["rows"])  # fitted once, in distribution
    assert math.isfinite(section["scale"]) and section["scale"] > 0
    trained = load_fluid(tmp_path / "train.npz").viscosity
    assert load_fluid(out / "shift-viscosity.npz").viscosity == pytest.approx(trained / 2)  # stored with the data
    assert section["rows"][1]["viscosity"] == pytest.approx(trained / 2)
    assert np.isfinite(metrics["runs"][0]["one_step"]) and metrics["runs"][0]["equivariance_1"] < 1e-5
    assert run_cli("evaluate", "fluid", run, "--data", tmp_path / "test.npz", "--rollout", 3, "--out", tmp_path / "other",
                   "--calibration", tmp_path / "train.npz", "--no-figures", "--quiet") == 0
    other = json.loads((tmp_path / "other" / "metrics.json").read_text())["committees"]["committee"]
    assert other["calibrated_on"].endswith("train.npz") and other["scale"] != section["scale"]
    assert other["rows"][0]["metrics"]["rmse"] == pytest.approx(section["rows"][0]["metrics"]["rmse"], rel=1e-6)
    return out


def test_shifts_need_a_committee(tmp_path, run_cli, capsys):
    generate_fluid(tmp_path / "train.npz", trajectories=3, steps=4, resolution=8, progress=False)
    run = tmp_path / "single"
    assert run_cli("train", "fluid", "--data", tmp_path / "train.npz", "--out", run, "--width", 2, "--blocks", 1,
                   "--kernel-size", 3, "--validation-trajectories", 1, "--epochs", 1, "--threads", 1, "--quiet") == 0
    assert run_cli("evaluate", "fluid", run, "--data", tmp_path / "train.npz", "--rollout", 2, "--shifts", "viscosity",
                   "--no-figures", "--quiet") != 0
    assert "need a committee" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the atomistic shifts are not the fluid's
        run_cli("evaluate", "fluid", run, "--data", tmp_path / "train.npz", "--shifts", "hot")
    assert "must name shifts among viscosity, rollout" in capsys.readouterr().err
