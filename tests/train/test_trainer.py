"""The shared Trainer: learning, atomic checkpoints, exact resume, time budget, early stopping."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from equiscale.train import CheckpointHeader, Trainer, TrainerConfig, load_checkpoint, save_checkpoint


def _problem(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    return TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:])


def _step(model, batch):
    x, y = batch
    error = model(x) - y
    return error.square().mean(), {"mae": float(error.detach().abs().mean())}


def _trainer(tmp_path, epochs=5, shuffle=True, **config):
    torch.manual_seed(0)
    train, val = _problem()
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 3, 0.5)
    return Trainer(model, optimizer, _step, DataLoader(train, batch_size=8, shuffle=shuffle), tmp_path,
                   TrainerConfig(max_epochs=epochs, **({"progress_bars": False, "log_epochs": False} | config)), val_data=DataLoader(val, batch_size=16),
                   scheduler=scheduler, extra={"note": "hello"}, header=CheckpointHeader("toy", {"epochs": epochs}))


def test_fit_learns_and_writes_checkpoints(tmp_path):
    trainer = _trainer(tmp_path, epochs=8)
    summary = trainer.fit()
    history = summary["history"]
    assert summary["epochs"] == 8 and summary["steps"] == 8 * 6 and summary["stop_reason"] == "max_epochs"
    assert history[-1]["val_loss"] < 0.5 * history[0]["val_loss"]
    assert {"loss", "mae", "val_loss", "val_mae", "lr", "time"} <= set(history[-1])
    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    assert last["epoch"] == 8 and last["extra"] == {"note": "hello"} and best["extra"] == {"note": "hello"}
    assert best["best"] == min(h["val_loss"] for h in history)
    assert json.loads((tmp_path / "history.json").read_text()) == history
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path / "a", epochs=4)
    straight.fit()
    first = _trainer(tmp_path / "b", epochs=2)
    first.fit()
    torch.manual_seed(123)  # disturb the global generator: resume must restore it
    second = _trainer(tmp_path / "b", epochs=4)
    summary = second.fit(resume=True)
    assert summary["epochs"] == 4 and len(summary["history"]) == 4
    for p, q in zip(straight.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)
    assert second.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]


def test_existing_run_is_not_overwritten_and_missing_run_cannot_resume(tmp_path):
    _trainer(tmp_path, epochs=1).fit()
    with pytest.raises(ValueError, match="already holds a training run"):
        _trainer(tmp_path, epochs=1).fit()
    with pytest.raises(FileNotFoundError):
        _trainer(tmp_path / "empty", epochs=1).fit(resume=True)


def test_time_budget_stops_within_an_epoch(tmp_path):
    trainer = _trainer(tmp_path, epochs=1000, max_time=1e-9)
    summary = trainer.fit()
    assert summary["stop_reason"] == "max_time" and summary["steps"] == 1 and summary["epochs"] == 1


def test_early_stopping(tmp_path):
    trainer = _trainer(tmp_path, epochs=1000, patience=2, min_delta=1e9)  # nothing counts as an improvement
    summary = trainer.fit()
    assert summary["stop_reason"] == "early stopping" and summary["epochs"] == 3


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"a": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"a": Unpicklable()})
    assert load_checkpoint(path, require_header=False) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(tmp_path / "bad.pt")


def test_progress_output(tmp_path, capsys):
    trainer = _trainer(tmp_path, epochs=2, progress=True)
    trainer.fit()
    err_out = capsys.readouterr()
    text = err_out.out + err_out.err
    assert "epoch 2/2" in text and "train[raw] loss" in text and "val[raw] loss" in text


def test_bad_config():
    with pytest.raises(ValueError, match="patience"):
        TrainerConfig(patience=0)
    with pytest.raises(ValueError, match="scheduler_interval"):
        TrainerConfig(scheduler_interval="batch")


def test_process_clock_counts_cpu_time(tmp_path):
    trainer = _trainer(tmp_path, epochs=2, clock="process")
    summary = trainer.fit()
    assert 0 < summary["train_time"] < 60
    with pytest.raises(ValueError, match="clock"):
        TrainerConfig(clock="gpu")


def test_runs_without_tqdm(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    summary = _trainer(tmp_path, epochs=2, progress=True).fit()
    assert summary["epochs"] == 2 and "epoch 2" in capsys.readouterr().out


def test_quiet_drops_the_bars_but_keeps_the_epoch_lines(tmp_path, capsys):
    _trainer(tmp_path, epochs=2, progress_bars=False, log_epochs=True).fit()
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "train[raw] loss" in lines[0] and "val[raw] loss" in lines[0]
    assert "batch" not in captured.err and "%|" not in captured.err
    assert TrainerConfig(progress=False).log_epochs is False and TrainerConfig(progress=True).progress_bars is True


def test_no_epoch_limit_stops_on_the_time_budget(tmp_path):
    summary = _trainer(tmp_path, epochs=None, max_time=0.3).fit()
    assert summary["stop_reason"] == "max_time" and summary["train_time"] >= 0.3 and summary["epochs"] >= 1
    with pytest.raises(ValueError, match="set max_epochs or max_time"):
        TrainerConfig(max_epochs=None)


def test_a_budget_that_ends_the_last_epoch_is_the_stop_reason(tmp_path):
    summary = _trainer(tmp_path, epochs=1, max_time=1e-9).fit()
    assert summary["epochs"] == 1 and summary["steps"] == 1 and summary["stop_reason"] == "max_time"


def test_resume_checks_the_kind(tmp_path):
    _trainer(tmp_path, epochs=1).fit()
    other = _trainer(tmp_path, epochs=2)
    other.header = CheckpointHeader("other")
    with pytest.raises(ValueError, match="holds a 'toy' checkpoint, not a 'other' one"):
        other.fit(resume=True)
