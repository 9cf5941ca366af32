"""The weight average: its arithmetic against a hand computation, and the Trainer keeping it
(validation and best.pt on the average, exact resume)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from equiscale.train import WeightAverage, ema_decay_at, load_checkpoint

from .test_trainer import _problem, _step, _trainer


def test_warm_up_and_average_by_hand():
    assert [ema_decay_at(0.9, t) for t in (0, 1, 8, 9, 100)] == [0.1, 2 / 11, 0.5, 10 / 19, 0.9]
    model = nn.Linear(1, 1, bias=False)
    model.register_buffer("count", torch.zeros(()))
    with torch.no_grad():
        model.weight.fill_(1.0)
    average = WeightAverage(model, decay=0.15)
    expected = 1.0
    for t, value in enumerate([3.0, -1.0, 5.0]):
        with torch.no_grad():
            model.weight.fill_(value)
            model.count.fill_(t + 1)
        average.update(model)
        decay = min(0.15, (1 + t) / (10 + t))  # 0.1, 0.15 (2/11 > 0.15), 0.15
        expected = decay * expected + (1 - decay) * value
        assert average.module.weight.item() == pytest.approx(expected, abs=1e-6)
        assert average.module.count.item() == t + 1  # buffers are copied, not averaged
    assert expected == pytest.approx(0.15 * (0.15 * (0.1 * 1 + 0.9 * 3) + 0.85 * -1) + 0.85 * 5)
    assert not average.module.weight.requires_grad
    copy = WeightAverage(model, decay=0.15)
    copy.load_state_dict(average.state_dict())
    assert copy.updates == 3 and torch.equal(copy.module.weight, average.module.weight)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, 1.0)


def _evaluate(weights, data):
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    model.load_state_dict(weights)
    x, y = data.tensors
    with torch.no_grad():
        return _step(model, (x, y))[0].item()


def test_trainer_validates_and_saves_the_average(tmp_path, capsys):
    trainer = _trainer(tmp_path, epochs=3, ema_decay=0.9, progress_bars=False, log_epochs=True)
    summary = trainer.fit()
    assert summary["validated_on"] == "ema"
    last, best = load_checkpoint(tmp_path / "last.pt", kind="toy"), load_checkpoint(tmp_path / "best.pt", kind="toy")
    assert last["ema_updates"] == 3 * 6 and set(best) >= {"header", "model", "ema"}
    assert not torch.equal(last["ema"]["0.weight"], last["model"]["0.weight"])
    _, val = _problem()
    assert summary["history"][-1]["val_loss"] == pytest.approx(_evaluate(last["ema"], val), rel=1e-5)
    assert summary["history"][-1]["val_loss"] != pytest.approx(_evaluate(last["model"], val), rel=1e-3)
    text = capsys.readouterr().out
    assert "val[ema]: after the epoch, with the moving average of the weights" in text
    assert "train[raw] loss" in text and "val[ema] loss" in text


def test_resume_with_the_average_is_exact(tmp_path):
    straight = _trainer(tmp_path / "a", epochs=4, ema_decay=0.8)
    straight.fit()
    _trainer(tmp_path / "b", epochs=2, ema_decay=0.8).fit()
    torch.manual_seed(7)
    resumed = _trainer(tmp_path / "b", epochs=4, ema_decay=0.8)
    resumed.fit(resume=True)
    assert resumed.average.updates == straight.average.updates == 24
    for p, q in zip(straight.average.module.parameters(), resumed.average.module.parameters()):
        assert torch.equal(p, q)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    drop_time = lambda history: [{k: v for k, v in h.items() if k != "time"} for h in history]  # noqa: E731
    assert drop_time(straight.history) == drop_time(resumed.history)
    with pytest.raises(ValueError, match="kept a weight average; resume it with the same ema_decay"):
        _trainer(tmp_path / "b", epochs=5).fit(resume=True)
