"""The worked example of docs/architecture.md: a tiny new application, built from the page's code.

The application is loaded from the page itself (its one Python block), so the page cannot drift
from what works. It is handed to the command line, `equiscale check` and the demo the way an
installed entry point would be, and as an entry point too.
"""
from __future__ import annotations

import importlib
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

from equiscale import applications, cli
from equiscale.applications import Application, discover

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def norms(tmp_path_factory):
    """The module defined by the page's Python block, importable as ``norms_app``."""
    (code,) = re.findall(r"```python\n(.*?)```", (ROOT / "docs/architecture.md").read_text(), flags=re.S)
    folder = tmp_path_factory.mktemp("norms_app")
    (folder / "norms_app.py").write_text(code)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("norms_app")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("norms_app", None)


def test_the_settings_dataclass_gives_the_options(norms, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "norms", "--help"], applications=[norms.APPLICATION])
    help_text = " ".join(capsys.readouterr().out.split())
    for option in ("--samples SAMPLES", "random training vectors (default 256)", "--width", "--max-time SECONDS",
                   "--ema-decay", "--resume", "--config FILE.yaml", "(default 20;"):
        assert option in help_text, option


def test_train_check_and_resume_through_the_command_line(norms, tmp_path, capsys):
    apps = [norms.APPLICATION]
    run = tmp_path / "run"
    assert cli.main(["train", "norms", "--out", str(run), "--epochs", "2", "--width", "4", "--quiet"],
                    applications=apps) == 0
    assert "trained for 2 epochs" in capsys.readouterr().out
    assert cli.main(["train", "norms", "--out", str(run), "--epochs", "3", "--resume", "--quiet"], applications=apps) == 0
    assert "trained for 3 epochs" in capsys.readouterr().out  # the saved width 4 was used: the weights fit
    assert cli.main(["check", str(run), "--tolerance", "1e-12"], applications=apps) == 0
    out = capsys.readouterr().out
    assert "norms: |x| (invariant)" in out and "O(2)" in out


def test_resume_keeps_the_runs_settings(norms, tmp_path, capsys):
    apps = [norms.APPLICATION]
    run = tmp_path / "run"
    assert cli.main(["train", "norms", "--out", str(run), "--epochs", "1", "--width", "4", "--quiet"], applications=apps) == 0
    capsys.readouterr()
    assert cli.main(["train", "norms", "--out", str(run), "--resume", "--width", "8"], applications=apps) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot resume" in err and "width: 4 -> 8" in err and "only out, epochs" in err
    assert cli.main(["train", "norms", "--resume"], applications=apps) == 2
    assert "--resume needs the run directory: pass --out DIR" in capsys.readouterr().err


def test_a_run_of_another_kind_is_not_resumed(norms, tmp_path, capsys):
    import torch

    from equiscale.train import CheckpointHeader

    (tmp_path / "other").mkdir()
    torch.save({"model": {}, "header": CheckpointHeader("fluid", {"samples": 3}).as_dict()}, tmp_path / "other" / "last.pt")
    assert cli.main(["train", "norms", "--out", str(tmp_path / "other"), "--resume"], applications=[norms.APPLICATION]) == 2
    assert "holds a 'fluid' checkpoint, not a 'norms' one" in capsys.readouterr().err


def test_a_checkpoint_of_the_new_kind_is_refused_elsewhere(norms, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "norms", "--out", str(run), "--epochs", "1", "--quiet"], applications=[norms.APPLICATION]) == 0
    capsys.readouterr()
    assert cli.main(["check", str(run)], applications=[]) == 2  # no installed application knows 'norms'
    assert "kind 'norms'" in capsys.readouterr().err


def test_the_demo_runs_the_new_section_before_the_symmetry_check(norms, tmp_path):
    from equiscale.demo import run_demo

    result = run_demo(out=tmp_path, quick=True, applications=[norms.APPLICATION], progress=False)
    assert [s.title for s in result.sections] == ["Norms", "Symmetry check"]
    trained = [row for row in result.summary if row.item.startswith("norms")]
    assert trained and not result.failed


def test_an_entry_point_is_discovered(norms, monkeypatch):
    entry = metadata.EntryPoint("norms", "norms_app:APPLICATION", applications.ENTRY_POINT_GROUP)
    original = metadata.entry_points

    def entry_points(**selection):
        found = list(original(**selection))
        return found + [entry] if selection.get("group") == applications.ENTRY_POINT_GROUP else found

    monkeypatch.setattr(applications.metadata, "entry_points", entry_points)
    assert "norms" in [a.name for a in discover()]


def test_declarations_that_collide_are_refused(norms):
    twin = Application("twin", "same command", commands=norms.APPLICATION.commands)
    with pytest.raises(ValueError, match="command 'train norms' is declared by both norms and twin"):
        discover(extra=[norms.APPLICATION, twin])
