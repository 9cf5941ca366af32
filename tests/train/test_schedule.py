"""Learning-rate schedules over the budget: the factor's shape, epochs vs time, the Trainer option, resume."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from equiscale.train import Trainer, TrainerConfig
from equiscale.train.schedule import budget_progress, schedule_factor


def test_cosine_factor_runs_from_one_to_final_with_warmup():
    assert schedule_factor("cosine", 0.0) == 1.0
    assert schedule_factor("cosine", 1.0, final=0.01) == pytest.approx(0.01)
    assert schedule_factor("cosine", 0.5, final=0.0) == pytest.approx(0.5)
    values = [schedule_factor("cosine", p / 20) for p in range(21)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # never rises without warm-up
    assert schedule_factor("cosine", 0.05, final=0.0, warmup=0.1) == pytest.approx(0.5)
    assert schedule_factor("cosine", 0.1, final=0.0, warmup=0.1) == pytest.approx(1.0)
    assert schedule_factor("constant", 0.7) == 1.0
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'"):
        schedule_factor("step", 0.5)


def test_progress_is_the_larger_of_epochs_and_time():
    assert budget_progress(1, 2, 4, 10, 0.0, None) == pytest.approx(0.15)
    assert budget_progress(0, 0, None, None, 30.0, 120.0) == pytest.approx(0.25)
    assert budget_progress(1, 0, 4, 10, 60.0, 120.0) == pytest.approx(0.5)  # time ends it first
    assert budget_progress(50, 0, 4, 10, 0.0, None) == 1.0


def _trainer(tmp_path, epochs=4, **config):
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(model, batch):
        return (model(batch[0]) - batch[1]).square().mean(), {}

    options = TrainerConfig(max_epochs=epochs, progress_bars=False, log_epochs=False, **config)
    return Trainer(model, optimizer, step, data, tmp_path, options)


def test_trainer_follows_the_cosine_over_epochs(tmp_path):
    trainer = _trainer(tmp_path, lr_schedule="cosine", lr_final=0.0)
    history = trainer.fit()["history"]
    # the lr logged after epoch e is the one of its last step, at progress (4 e - 1) / 16
    for record in history:
        expected = 0.1 * 0.5 * (1 + math.cos(math.pi * (4 * record["epoch"] - 1) / 16))
        assert record["lr"] == pytest.approx(expected)
    assert history[-1]["lr"] < 0.01 < history[0]["lr"]


def test_trainer_follows_the_time_budget_and_resume_keeps_the_schedule(tmp_path):
    trainer = _trainer(tmp_path / "a", epochs=None, max_time=0.05, lr_schedule="cosine", lr_final=0.1)
    trainer.fit()
    assert trainer.elapsed >= 0.05 and 0.01 <= trainer.optimizer.param_groups[0]["lr"] < 0.1
    first = _trainer(tmp_path / "b", epochs=2, lr_schedule="cosine")
    first.fit()
    resumed = _trainer(tmp_path / "b", epochs=4, lr_schedule="cosine")
    resumed.fit(resume=True)
    assert resumed.optimizer.param_groups[0]["initial_lr"] == 0.1  # the base rate, not the decayed one


def test_schedule_and_scheduler_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainerConfig(lr_schedule="linear")
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="not both"):
        Trainer(model, optimizer, lambda m, b: (m(b).sum(), {}), [], tmp_path,
                TrainerConfig(lr_schedule="cosine"), scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1))
