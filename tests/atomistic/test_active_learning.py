"""Active learning: one round on a few EMT frames, the per-round record, resume, the reference by name."""
from __future__ import annotations

import json

import pytest

from equiscale.atomistic.active_learning import active_learning, committee_md, reference_calculator
from equiscale.atomistic.settings import LearnPotential
from equiscale.uncertainty import is_committee

FAST = dict(initial_frames=3, md_steps=60, epochs=4, retrain_epochs=2, test_frames=2, min_gap=5, channels=4,
            ensemble=2, cutoff=3.5, threads=1)


def test_one_round_on_a_few_emt_frames(tmp_path):
    settings = LearnPotential(out=str(tmp_path / "al"), rounds=1, threshold=1e-6, explode_factor=1e9, max_new=2, **FAST)
    lines: list[str] = []
    rounds = active_learning(settings, log=lines.append)
    assert len(rounds) == 1
    record = rounds[0]
    assert record["labelled"] == 3 and record["new"] == 2  # a tiny threshold: every frame qualifies, max_new caps
    assert record["force_mae"] > 0 and record["stable_fs"] == 120 and not record["exploded"]
    folder = tmp_path / "al" / "round-1"
    assert is_committee(folder) and (folder / "member-1" / "best.pt").is_file()
    from equiscale.atomistic import read_structures

    selected = read_structures(folder / "selected.xyz")
    assert len(selected) == 2 and all(s.forces is not None and s.energy is not None for s in selected)
    assert json.loads((tmp_path / "al" / "rounds.json").read_text())["rounds"][0]["new"] == 2
    assert any(line.startswith("round 1: trained on 3 frames") for line in lines)

    # resume: round 2 warm-starts from round 1 and trains on the 5 frames
    more = settings.replace(rounds=2, resume=True)
    rounds = active_learning(more, log=lines.append)
    assert [r["round"] for r in rounds] == [1, 2] and rounds[1]["labelled"] == 5
    with pytest.raises(ValueError, match="already holds an active-learning run"):
        active_learning(settings.replace(resume=False), log=lines.append)


def test_md_stops_when_the_spread_explodes(tmp_path):
    settings = LearnPotential(out=str(tmp_path / "al"), rounds=1, threshold=1e-6, explode_factor=1e9, **FAST)
    active_learning(settings, log=lambda line: None)
    from equiscale.atomistic import Calculator

    md = committee_md(Calculator(tmp_path / "al" / "round-1"), settings.replace(explode_factor=1.0), 1e-9, seed=0)
    assert md["exploded"] and md["steps"] == 0 and md["frames"] == []


def test_reference_calculator_by_name():
    assert type(reference_calculator("emt")).__name__ == "EMT"
    assert type(reference_calculator("ase.calculators.lj:LennardJones")).__name__ == "LennardJones"
    with pytest.raises(ValueError, match="cannot be imported"):
        reference_calculator("ase.calculators.nope:Nothing")
    with pytest.raises(ValueError, match="module:Class"):
        LearnPotential(out="x", calculator="xtb")
