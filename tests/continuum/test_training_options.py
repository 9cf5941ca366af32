"""The training options for stable rollouts (pushforward, noise, curriculum), selection of best.pt on the
validation rollout error, and the learning-rate schedule stated in the run."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from equiscale import cli
from equiscale.continuum.app import APPLICATION
from equiscale.continuum.data import generate_fluid
from equiscale.continuum.training import DIVERGED, _make_step, _make_val_step, _unroll_length
from equiscale.train import load_checkpoint

TINY = ("--width", "2", "--blocks", "1", "--kernel-size", "3", "--validation-trajectories", "1", "--batch-size", "8",
        "--threads", "1", "--quiet")


class Recorder(nn.Module):
    """w -> 0.9 w + b, recording whether gradients were on and the input of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[bool, torch.Tensor]] = []

    def forward(self, w):
        self.calls.append((torch.is_grad_enabled(), w.detach().clone()))
        return 0.9 * w + self.bias


def _batch(steps=3):
    return torch.randn(4, steps + 1, 8, 8, generator=torch.Generator().manual_seed(0))


def test_pushforward_trains_only_the_last_step_on_the_models_own_input():
    batch = _batch()
    model = Recorder()
    loss, metrics = _make_step(1.0, pushforward=True)(model, batch)
    assert [grad for grad, _ in model.calls] == [False, False, True]
    assert torch.allclose(model.calls[2][1], 0.81 * batch[:, 0])  # two steps of the model, not the true frame 2
    assert torch.allclose(loss, (0.729 * batch[:, 0] - batch[:, 3]).square().mean())
    loss.backward()
    assert model.bias.grad is not None
    plain = Recorder()
    _make_step(1.0)(plain, batch)
    assert [grad for grad, _ in plain.calls] == [True, True, True]


def test_noise_is_relative_to_the_field_scale_and_only_in_training():
    batch = _batch(1).repeat(50, 1, 1, 1)
    model = Recorder()
    _make_step(1.0, field_scale=3.0, noise=0.1)(model, batch)
    added = model.calls[0][1] - batch[:, 0]
    assert abs(float(added.std()) - 0.3) < 0.02 and abs(float(added.mean())) < 0.02
    model.eval()
    model.calls.clear()
    _make_step(1.0, field_scale=3.0, noise=0.1)(model, batch)
    assert torch.equal(model.calls[0][1], batch[:, 0])


def test_curriculum_grows_the_unroll_to_the_full_window_by_half_the_budget():
    assert [_unroll_length(4, lambda p=p: p) for p in (0.0, 0.1, 0.2, 0.3, 0.5, 0.9)] == [1, 1, 2, 3, 4, 4]
    model = Recorder()
    progress = [0.0]
    step = _make_step(1.0, progress=lambda: progress[0])
    _, metrics = step(model, _batch(4))
    assert len(model.calls) == 1 and metrics["unroll"] == 1
    progress[0] = 0.6
    _, metrics = step(model, _batch(4))
    assert len(model.calls) == 5 and metrics["unroll"] == 4


def test_validation_measures_the_rollout_and_ranks_a_diverged_one_last():
    batch = _batch(4)
    _, metrics = _make_val_step(1.0)(lambda w: w, batch)
    expected = [float(((batch[:, 0] - batch[:, t]).flatten(1).norm(dim=1) / batch[:, t].flatten(1).norm(dim=1)).mean())
                for t in range(1, 5)]
    assert metrics["rollout"] == pytest.approx(sum(expected) / 4) and metrics["rollout_end"] == pytest.approx(expected[-1])
    _, metrics = _make_val_step(1.0)(lambda w: w * float("inf"), batch)
    assert metrics["rollout"] == pytest.approx(DIVERGED)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("fluid") / "train.npz"
    generate_fluid(path, trajectories=3, steps=6, resolution=8, progress=False)
    return path


def test_the_command_trains_with_every_option_and_states_selection_and_schedule(data, tmp_path):
    out = tmp_path / "run"
    assert cli.main([str(a) for a in ("train", "fluid", "--data", data, "--out", out, "--model", "gcnn", "--epochs", "3",
                                      "--rollout-steps", "3", "--pushforward", "--noise", "0.01", "--curriculum",
                                      "--val-rollout", "50", *TINY)], applications=[APPLICATION]) == 0
    history = json.loads((out / "history.json").read_text())
    assert {"val_rollout", "val_rollout_end", "unroll"} <= set(history[0])
    assert [h["unroll"] for h in history] == sorted(h["unroll"] for h in history) and history[-1]["unroll"] == 3
    assert history[0]["lr"] > history[1]["lr"] > history[2]["lr"]  # cosine over the 3 epochs
    best = load_checkpoint(out / "best.pt", kind="fluid")
    assert best["best"] == min(h["val_rollout"] for h in history)  # chosen on the rollout error
    config = json.loads((out / "config.json").read_text())
    assert config["validation_horizon"] == 6  # 50 asked, the trajectories hold 7 frames
    assert "over steps 1..6" in config["selection"] and config["lr_schedule"].startswith("cosine from 0.002")
    assert "over the epochs: 3 epochs" in config["lr_schedule"]
    settings = best["header"]["settings"]
    assert settings["pushforward"] and settings["curriculum"] and settings["noise"] == 0.01


def test_the_plateau_schedule_and_a_too_long_unroll(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ("train", "fluid", "--data", data, "--model", "cnn", "--epochs", "1", *TINY)
    assert cli.main([str(a) for a in (*args, "--out", out, "--schedule", "plateau")], applications=[APPLICATION]) == 0
    assert "plateau" in json.loads((out / "config.json").read_text())["lr_schedule"]
    capsys.readouterr()
    assert cli.main([str(a) for a in (*args, "--out", tmp_path / "x", "--rollout-steps", "7")],
                    applications=[APPLICATION]) == 2
    assert "--rollout-steps 7 needs trajectories of more than 7 frames" in capsys.readouterr().err
