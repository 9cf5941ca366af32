"""The generic committee runner (--ensemble N), its resume and refusals, and the Committee module."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from equiscale.settings import TrainingSettings, setting
from equiscale.uncertainty import Committee, load_committee, read_committee
from equiscale.uncertainty.committee import plan_processes, train_committee


@dataclass
class FakeTrain(TrainingSettings):
    """A train command that writes what it was given instead of training."""

    checkpoint_kind: ClassVar[str | None] = "fake"
    width: int = setting(3, help="a model setting")


def fake_run(settings: FakeTrain) -> int:
    """Record the member's settings in out/last.pt (JSON) and print a line."""
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    calls = json.loads((out / "last.pt").read_text())["calls"] if settings.resume else 0
    (out / "last.pt").write_text(json.dumps({"seed": settings.seed, "resume": settings.resume, "calls": calls + 1,
                                             "threads": settings.threads, "pid": os.getpid(),
                                             "ensemble": settings.ensemble}))
    print(f"member with seed {settings.seed} done")
    return 0


RUN = f"{__name__}:fake_run"


def _member(folder: Path, k: int) -> dict:
    return json.loads((folder / f"member-{k}" / "last.pt").read_text())


@pytest.mark.parametrize("processes", [1, 2])
def test_members_get_their_own_seed_folder_and_a_committee_file(tmp_path, processes, capsys):
    out = tmp_path / "run"
    assert train_committee(RUN, FakeTrain(out=str(out), seed=10, ensemble=3, threads=2), processes=processes) == 0
    members = [_member(out, k) for k in range(3)]
    assert [m["seed"] for m in members] == [10, 11, 12]
    assert all(m["ensemble"] == 1 and not m["resume"] for m in members)
    if processes == 2:  # worker processes: the threads split, output in each member's log
        assert {m["threads"] for m in members} == {1} and os.getpid() not in {m["pid"] for m in members}
        assert "member with seed 11 done" in (out / "member-1" / "train.log").read_text()
    else:
        assert {m["pid"] for m in members} == {os.getpid()}
    data = read_committee(out)
    assert data["kind"] == "fake" and data["members"] == ["member-0", "member-1", "member-2"] and data["complete"]
    assert data["settings"]["ensemble"] == 3 and data["seeds"] == [10, 11, 12]
    assert "committee of 3" in capsys.readouterr().out


def test_resume_continues_each_member_and_starts_the_missing_ones(tmp_path):
    out = tmp_path / "run"
    train_committee(RUN, FakeTrain(out=str(out), ensemble=2), processes=1)
    (out / "member-1" / "last.pt").unlink()  # interrupted before member 1 wrote anything
    with pytest.raises(ValueError, match="already holds a training run"):
        train_committee(RUN, FakeTrain(out=str(out), ensemble=2), processes=1)
    saved = FakeTrain.saved_settings(out)
    assert saved["ensemble"] == 2 and saved["seed"] == 0
    train_committee(RUN, FakeTrain(**{**saved, "resume": True}), processes=1)
    assert _member(out, 0)["resume"] and _member(out, 0)["calls"] == 2
    assert not _member(out, 1)["resume"] and _member(out, 1)["calls"] == 1


def test_the_ensemble_size_may_not_change_on_resume(tmp_path):
    out = tmp_path / "run"
    train_committee(RUN, FakeTrain(out=str(out), ensemble=2), processes=1)
    saved = FakeTrain.saved_settings(out)
    with pytest.raises(ValueError, match="different settings: ensemble: 2 -> 3"):
        FakeTrain.check_resume(saved, {"ensemble": 3, "resume": True}, out)
    FakeTrain.check_resume(saved, {"ensemble": 2, "epochs": 5}, out)  # allowed


def test_refused_under_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="torchrun"):
        train_committee(RUN, FakeTrain(out=str(tmp_path / "run"), ensemble=2))


def test_process_plan_splits_the_threads():
    assert plan_processes(3, threads=None, cpus=2) == (2, 1)
    assert plan_processes(2, threads=8) == (2, 4)
    assert plan_processes(5, threads=1) == (1, 1)
    assert plan_processes(4, threads=4, device="cuda") == (1, 4)


class Affine(torch.nn.Module):
    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.cutoff = 5.0

    def forward(self, x):
        return {"y": self.a * x + self.b, "pair": (x * self.a, None)}


def test_committee_mean_and_spread_match_numpy(tmp_path):
    members = [Affine(a, b) for a, b in ((1.0, 0.0), (2.0, 1.0), (4.0, -1.0))]
    committee = Committee(members)
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    mean, spread = committee.predict(x)
    stacked = torch.stack([m(x)["y"] for m in members]).numpy()
    torch.testing.assert_close(mean["y"], torch.from_numpy(stacked.mean(0)))
    torch.testing.assert_close(spread["y"], torch.from_numpy(stacked.std(0, ddof=1)))
    assert spread["pair"][1] is None and committee(x)["pair"][0].shape == (5,)
    assert committee.cutoff == 5.0 and len(committee) == 3


def test_load_committee_uses_the_applications_loader(tmp_path):
    out = tmp_path / "run"
    train_committee(RUN, FakeTrain(out=str(out), ensemble=2), processes=1)
    committee = load_committee(out, lambda folder: Affine(_member(out, int(folder.name[-1]))["seed"] + 1.0, 0.0))
    assert [m.a for m in committee.members] == [1.0, 2.0]
    (out / "member-1" / "last.pt").unlink()
    import shutil

    shutil.rmtree(out / "member-1")
    with pytest.raises(FileNotFoundError, match="member-1 was never trained"):
        load_committee(out, lambda folder: Affine(1.0, 0.0))
    with pytest.raises(FileNotFoundError, match="not a committee"):
        load_committee(tmp_path, lambda folder: Affine(1.0, 0.0))


def test_the_command_line_hands_ensemble_runs_to_the_runner(tmp_path, capsys):
    from equiscale import cli
    from equiscale.applications import Application, Command

    app = Application("fake", "a fake application", commands=(Command("train", "fake", FakeTrain, run=RUN, help="fake"),))
    out = tmp_path / "run"
    assert cli.main(["train", "fake", "--out", str(out), "--ensemble", "2", "--threads", "1", "--seed", "5"],
                    applications=[app]) == 0
    assert [_member(out, k)["seed"] for k in range(2)] == [5, 6]
    assert cli.main(["train", "fake", "--out", str(out), "--resume", "--ensemble", "3"], applications=[app]) == 2
    assert "ensemble: 2 -> 3" in capsys.readouterr().err
    assert cli.main(["train", "fake", "--out", str(out), "--resume", "--threads", "1"], applications=[app]) == 0
    assert _member(out, 1)["calls"] == 2 and _member(out, 1)["seed"] == 6
    assert cli.main(["train", "fake", "--out", str(tmp_path / "single")], applications=[app]) == 0
    assert not (tmp_path / "single" / "committee.json").exists() and (tmp_path / "single" / "last.pt").exists()
