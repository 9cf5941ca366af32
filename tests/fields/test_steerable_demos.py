"""The steerable demos: model equivariance (float64), the angle measurement, and the commands end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from equiscale import cli
from equiscale.applications import discover
from equiscale.continuum.data import generate_fluid
from equiscale.fields.efield import run_efield_demo
from equiscale.fields.rotation_error import analytic_flow, angle_equivariance_2d, cube_rotations, fourier_interpolate
from equiscale.fields.models import EfieldCNN, SteerableEfieldNet, SteerableVelocityNet, VelocityCNN
from equiscale.groups import C, SO3
from equiscale.testing import GridField


def _randomise(model, seed):
    """Non-zero biases (and weights) everywhere, so that no path is trivially equivariant."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.3)
    return model


def _quarter_turn_error(model, x, in_action, out_action, group, elements):
    with torch.no_grad():
        y = model(x)
        worst = 0.0
        for g in elements:
            moved = model(in_action.apply(group, g, x, None))
            worst = max(worst, float((moved - out_action.apply(group, g, y, None)).abs().max() / y.abs().max()))
    return worst


@pytest.mark.parametrize("group", ["C8", "SO2"])
def test_steerable_velocity_net_is_exactly_equivariant_under_quarter_turns(group):
    torch.manual_seed(0)
    model = _randomise(SteerableVelocityNet(group, width=2, blocks=1, kernel_size=5, field_scale=0.7, delta_scale=0.2,
                                            dtype=torch.float64), 1)
    u = torch.randn(2, 2, 9, 9, dtype=torch.float64)
    c8 = C(8)
    vector = GridField(c8.irrep(1), axis=1)  # (u_x, u_y): the frequency-1 irrep is the rotation matrix itself
    error = _quarter_turn_error(model, u, vector, vector, c8, [torch.tensor(k) for k in (2, 4, 6)])
    assert error <= 1e-10
    cnn = _randomise(VelocityCNN(4, blocks=1, kernel_size=3, dtype=torch.float64), 1)
    assert _quarter_turn_error(cnn, u, vector, vector, c8, [torch.tensor(2)]) > 1e-3


def test_steerable_efield_net_is_exactly_equivariant_under_the_cube_rotations():
    torch.manual_seed(0)
    model = _randomise(SteerableEfieldNet((2, 2, 1), blocks=1, kernel_size=5, density_scale=2.0, field_scale=0.5,
                                          dtype=torch.float64), 2)
    rho = torch.randn(1, 5, 5, 5, dtype=torch.float64)
    group = SO3()
    scalar, vector = GridField(None, ndim=3), GridField(group.irrep(1), axis=-4, ndim=3)
    assert model(rho).shape == (1, 3, 5, 5, 5)
    assert _quarter_turn_error(model, rho, scalar, vector, group, cube_rotations()[1:]) <= 1e-10
    cnn = _randomise(EfieldCNN(3, blocks=1, kernel_size=3, dtype=torch.float64), 2)
    assert _quarter_turn_error(cnn, rho, scalar, vector, group, cube_rotations()[1:4]) > 1e-3


def test_models_refuse_bad_shapes():
    with pytest.raises(ValueError, match="not square"):
        SteerableVelocityNet("C8", 1, 1, 5)(torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        VelocityCNN(2, 1, 3)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="not a cube"):
        EfieldCNN(2, 1, 3)(torch.zeros(1, 4, 4, 5))
    with pytest.raises(ValueError, match="group"):
        SteerableVelocityNet("D4")


def test_fourier_interpolation_and_the_angle_measurement():
    generator = torch.Generator().manual_seed(0)
    field = torch.randn(2, 8, 8, dtype=torch.float64, generator=generator)
    grid = torch.arange(8, dtype=torch.float64) - 3.5
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    torch.testing.assert_close(fourier_interpolate(field, torch.stack([x.flatten(), y.flatten()], -1)),
                               field.flatten(1))  # exact at the samples
    points = torch.rand(20, 3, dtype=torch.float64, generator=generator) * 6 - 3  # a band-limited 3D field
    wave = lambda p: torch.cos(2 * math.pi * (p[..., 0] - 2 * p[..., 1] + p[..., 2]) / 6 + 0.3)  # noqa: E731
    cube = torch.arange(6, dtype=torch.float64) - 2.5
    z, y, x = torch.meshgrid(cube, cube, cube, indexing="ij")
    torch.testing.assert_close(fourier_interpolate(wave(torch.stack([x, y, z], -1)), points), wave(points))
    # an exactly equivariant map (the identity) measures ~0 at quarter turns and its interpolation floor elsewhere
    errors = angle_equivariance_2d(lambda u, w: u[0], 32, 2 * math.pi, [0.0, math.pi / 4, math.pi / 2], 1.0)
    assert errors[0] < 1e-14 and errors[2] < 1e-14 and errors[1] < 1e-6
    u, w = analytic_flow(16, 1.0)
    assert u.shape == (2, 16, 16) and w.shape == (16, 16)


@pytest.fixture
def run_cli():
    assert "fields" in {application.name for application in discover()}  # the entry point of pyproject.toml
    return lambda *args: cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def fluid(tmp_path_factory):
    path = tmp_path_factory.mktemp("fluid") / "fluid.npz"
    generate_fluid(path, trajectories=4, steps=5, resolution=8, progress=False)
    return path


def _figures_written(folder, names):
    report = (folder / "report.md").read_text()
    for name in names:
        assert (folder / name).stat().st_size > 1000
        assert f"({name})" in report


def test_train_velocity_quick_end_to_end(fluid, tmp_path, run_cli, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "velocity"
    assert run_cli("train", "velocity", "--data", fluid, "--out", out, "--quick", "--quiet", "--max-time", "1") == 0
    _figures_written(out, ["velocity_rollout.png", "velocity_rollout_error.png", "velocity_equivariance_angles.png"])
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {r["model"]: r for r in metrics["rows"]}
    assert set(rows) == {"steerable", "gcnn", "cnn"}
    assert rows["steerable"]["equivariance_90_1"] < 1e-5 and rows["gcnn"]["equivariance_90_1"] < 1e-5
    assert rows["cnn"]["equivariance_90_1"] > 1e-4
    for name in rows:
        assert (out / name / "best.pt").exists() and (out / name / "history.json").exists()
    assert "C(8)-steerable" in capsys.readouterr().out
    # a second run into the same folder is refused; --resume continues (here: budgets spent, evaluates again)
    assert run_cli("train", "velocity", "--data", fluid, "--out", out, "--quick", "--quiet") == 2
    assert "--resume" in capsys.readouterr().err


def test_train_efield_quick_end_to_end(tmp_path, run_cli):
    pytest.importorskip("matplotlib")
    out = tmp_path / "efield"
    assert run_cli("train", "efield", "--out", out, "--quick", "--quiet", "--samples", "6", "--max-time", "1") == 0
    _figures_written(out, ["efield_slice.png", "efield_equivariance_angles.png"])
    rows = {r["model"]: r for r in json.loads((out / "metrics.json").read_text())["rows"]}
    assert set(rows) == {"steerable", "cnn", "cnn-wide"}
    assert rows["steerable"]["equivariance_cube"] < 1e-5 and rows["cnn"]["equivariance_cube"] > 1e-4


@pytest.mark.slow
def test_train_efield_resume_continues_with_a_larger_budget(tmp_path, run_cli):
    pytest.importorskip("matplotlib")
    out = tmp_path / "efield"
    options = ("train", "efield", "--out", out, "--quick", "--quiet", "--samples", "6")
    assert run_cli(*options, "--max-time", "0.5") == 0
    before = {name: json.loads((out / name / "history.json").read_text())[-1]["step"] for name in ("steerable", "cnn")}
    assert run_cli(*options, "--resume") == 0  # the budget may change; the epochs limit of --quick is 2
    after = {name: json.loads((out / name / "history.json").read_text())[-1]["step"] for name in ("steerable", "cnn")}
    assert all(after[name] >= before[name] for name in before)


def test_run_efield_demo_returns_markdown_figures_rows(tmp_path):
    pytest.importorskip("matplotlib")
    result = run_efield_demo(tmp_path, quick=True, seed=1, progress=False, samples=5)
    assert set(result) == {"markdown", "figures", "rows", "models", "resolution", "box_size"}
    assert set(result["models"]) == {"steerable", "cnn", "cnn-wide"}
    assert all(path.exists() for path in result["figures"])
    assert [set(r) >= {"model", "error", "equivariance"} for r in result["rows"]] == [True] * 3
    assert "| SO(3)-steerable CNN |" in result["markdown"]


@pytest.mark.parametrize("content, match", [
    ({"velocity": np.zeros((2, 3, 8, 8), np.float32)}, "no 'vorticity'"),
    ({"vorticity": np.full((3, 4, 8, 8), np.nan, np.float32)}, "NaN"),
    ({"vorticity": np.zeros((3, 4, 8, 6), np.float32)}, "square"),
    ({"vorticity": np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32)}, "at least 3 trajectories"),
])
def test_bad_data_gives_one_line_errors(tmp_path, run_cli, capsys, content, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    assert run_cli("train", "velocity", "--data", path, "--out", tmp_path / "out", "--quick", "--quiet") == 2
    error = capsys.readouterr().err
    assert match in error and error.startswith("equiscale train velocity: error:") and error.count("\n") == 1


def test_bad_options_are_usage_errors(tmp_path, run_cli, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("train", "efield", "--out", tmp_path, "--samples", "0")
    assert exit_info.value.code == 2
    assert run_cli("train", "efield", "--out", tmp_path / "x", "--quick", "--quiet", "--samples", "2") == 2
    assert "at least 3 samples" in capsys.readouterr().err
    assert run_cli("train", "velocity", "--data", tmp_path / "missing.npz", "--out", tmp_path / "y", "--quiet") == 2


def test_yaml_config_fills_options_and_bad_settings_are_one_line_errors(run_cli, tmp_path, capsys):
    config = tmp_path / "efield.yaml"
    config.write_text("quick: true\nmax-time: 0.5\nsamples: 12\nresolution: 8\nout: %s\n" % (tmp_path / "run"))
    assert run_cli("train", "efield", "--config", config, "--quiet") == 0
    assert (tmp_path / "run" / "report.md").is_file()
    config.write_text("bogus: 1\n")
    assert run_cli("train", "efield", "--config", config, "--out", tmp_path / "x") == 2
    error = capsys.readouterr().err
    assert "unknown setting" in error and "bogus" in error and error.count("\n") == 1
    assert run_cli("train", "velocity", "--quick") == 2  # neither --out nor --data
    error = capsys.readouterr().err
    assert "pass --out" in error and error.count("\n") == 1
