"""The `equiscale` command: help everywhere, defaults, YAML configs, and one-line errors."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest

from equiscale import cli

ROOT = Path(__file__).resolve().parents[1]


def _leaves() -> list[tuple[str, argparse.ArgumentParser]]:
    return [(leaf.prog, leaf) for leaf in cli._leaf_parsers(cli.build_parser())]


def test_every_command_and_task_is_registered():
    progs = {prog for prog, _ in _leaves()}
    assert {"equiscale demo", "equiscale check", "equiscale data fluid", "equiscale data emt", "equiscale train fluid",
            "equiscale train potential", "equiscale evaluate fluid", "equiscale evaluate potential"} <= progs


@pytest.mark.parametrize("prog", [prog for prog, _ in _leaves()])
def test_every_task_explains_itself_and_every_option(prog):
    parser = dict(_leaves())[prog]
    assert parser.description and len(parser.description) > 40, f"{prog} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{prog} {action.option_strings or action.dest} has no help text"
        flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
        if action.option_strings and not (flag or action.required):
            text = action.help.lower()
            assert "default" in text or "required here or in --config" in text, \
                f"{prog} {action.option_strings[0]}: the help does not give the default"


@pytest.mark.parametrize("argv", [[], ["train"], ["data"], ["evaluate"], ["demo"], ["check"], ["train", "fluid"]])
def test_help_exits_zero(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: equiscale" in capsys.readouterr().out


def test_entry_point_is_installed():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "equiscale"]
    assert script.value == "equiscale.cli:main" and script.load() is cli.main


@pytest.mark.parametrize("argv, message", [
    (["no-such-command"], "invalid choice"),
    (["train", "fluid", "--epochs", "0"], "must be a positive integer"),
    (["demo", "--threads", "zero"], "argument --threads: must be an integer, got 'zero'"),
    (["demo", "--threads", "0"], "argument --threads: must be a positive integer, got 0"),
    (["check"], "the following arguments are required: CHECKPOINT"),
])
def test_usage_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and message in err


# --- errors while running --------------------------------------------------------------------------
def _one_line_error(capsys, argv: list[str], status: int = 2) -> str:
    assert cli.main([str(a) for a in argv]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_missing_files_are_one_line(tmp_path, capsys):
    err = _one_line_error(capsys, ["train", "fluid", "--data", tmp_path / "missing.npz", "--out", tmp_path / "run"])
    assert err.startswith("equiscale train fluid: error:") and "missing.npz does not exist" in err
    assert "missing.yaml does not exist" in _one_line_error(capsys, ["train", "fluid", "--config", tmp_path / "missing.yaml"])
    assert "does not exist" in _one_line_error(capsys, ["evaluate", "fluid", tmp_path / "none", "--data", tmp_path / "x.npz"])
    assert "no training data" in _one_line_error(capsys, ["train", "fluid"])
    assert "no training data" in _one_line_error(capsys, ["train", "potential", "--out", tmp_path / "p"])


@pytest.mark.parametrize("command", ["fluid", "potential"])
@pytest.mark.parametrize("text, message", [
    ("model: [gcnn\n", "is not valid YAML"),
    ("- just\n- a list\n", "must hold a mapping"),
    ("widht: 3\n", "unknown setting(s) widht"),
    ("epochs: many\n", "setting 'epochs' must be an integer"),
])
def test_bad_config_files_are_one_line(tmp_path, capsys, command, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    err = _one_line_error(capsys, ["train", command, "--config", config, "--data", tmp_path / "x", "--out", tmp_path / "r"])
    assert message in err and str(config) in err


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path):
    for argv in (["--debug", "check", str(tmp_path / "x.pt")], ["check", str(tmp_path / "x.pt"), "--debug"]):
        with pytest.raises(FileNotFoundError):
            cli.main(argv)


def _with_run(monkeypatch, error: BaseException):
    """Make every command's run function raise ``error``."""
    def run(settings):
        raise error

    monkeypatch.setattr(cli, "load_function", lambda reference: run)


def test_missing_optional_package_names_the_extra(monkeypatch, capsys):
    _with_run(monkeypatch, ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"))
    assert "pip install 'equiscale[plot]'" in _one_line_error(capsys, ["check", "x"])


def test_an_applications_missing_package_names_its_extra(monkeypatch, capsys):
    _with_run(monkeypatch, ModuleNotFoundError("No module named 'pyscf'", name="pyscf"))
    assert "pip install 'equiscale[quantum]'" in _one_line_error(capsys, ["check", "x"])  # declared by quantum/app.py


def test_ctrl_c_exits_130(monkeypatch, capsys):
    _with_run(monkeypatch, KeyboardInterrupt())
    assert cli.main(["check", "x"]) == 130
    assert "equiscale check: interrupted" in capsys.readouterr().err


def test_bugs_are_not_hidden(monkeypatch):
    _with_run(monkeypatch, TypeError("a bug"))
    with pytest.raises(TypeError, match="a bug"):
        cli.main(["check", "x"])


def test_error_descriptions_are_one_line():
    assert cli.describe_error(FileNotFoundError(2, "No such file or directory", "a.txt")) == "a.txt: No such file or directory"
    assert cli.describe_error(KeyError("settings")) == "missing entry 'settings'"
    assert cli.describe_error(ValueError("two\nlines")) == "two lines"


# --- YAML configuration and defaults ---------------------------------------------------------------
def test_help_states_each_settings_default():
    from equiscale.applications import discover
    from equiscale.settings import describe_default

    for application in discover():
        for command in application.commands:
            parser = dict(_leaves())[f"equiscale {command.verb} {command.task}"]
            helps = {action.dest: " ".join(action.help.split()) for action in parser._actions}
            for field in dataclasses.fields(command.settings):
                if field.metadata.get("required") or field.metadata.get("positional"):
                    continue
                expected = describe_default(field).format(cls=command.settings)
                assert f"(default {' '.join(expected.split())}" in helps[field.name], (command.task, field.name)


def test_shipped_configs_are_valid():
    from equiscale.applications import discover
    from equiscale.settings import resolve

    commands = {(c.verb, c.task): c for a in discover() for c in a.commands}
    files = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        verb, task = re.search(r"equiscale (\w+) (\w+) --config", path.read_text()).groups()
        settings = resolve(commands[verb, task].settings, config=path, saved={"data": "x", "out": "y"})
        assert settings.out


@pytest.fixture(scope="module")
def fluid_file(tmp_path_factory):
    from equiscale.continuum.data import generate_fluid

    path = tmp_path_factory.mktemp("fluid") / "data.npz"
    generate_fluid(path, trajectories=3, steps=3, resolution=8, progress=False)
    return path


def test_fluid_config_file_with_command_line_overrides(tmp_path, fluid_file, capsys):
    run = tmp_path / "run"
    config = tmp_path / "fluid.yaml"
    config.write_text(f"data: {fluid_file}\nout: {run}\nmodel: cnn\nwidth: 3\nblocks: 1\nkernel_size: 3\n"
                      f"epochs: 5\nvalidation_trajectories: 1\nbatch_size: 4\n")
    assert cli.main(["train", "fluid", "--config", str(config), "--epochs", "1", "--quiet", "--threads", "1"]) == 0
    saved = json.loads((run / "config.json").read_text())["train"]
    assert saved["model"] == "cnn" and saved["width"] == 3 and saved["epochs"] == 1 and saved["kernel_size"] == 3
    assert "trained cnn" in capsys.readouterr().out
    # --resume takes the run's saved settings; a changed architecture is refused in one line
    assert cli.main(["train", "fluid", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert json.loads((run / "history.json").read_text())[-1]["epoch"] == 2
    capsys.readouterr()
    assert "cannot resume" in _one_line_error(capsys, ["train", "fluid", "--out", run, "--resume", "--width", "5"])


def test_wrong_checkpoint_kind_is_named(tmp_path, fluid_file, capsys):
    import torch

    run = tmp_path / "fluid"
    assert cli.main(["train", "fluid", "--data", str(fluid_file), "--out", str(run), "--width", "1", "--blocks", "1",
                     "--kernel-size", "3", "--epochs", "1", "--validation-trajectories", "1", "--quiet"]) == 0
    err = _one_line_error(capsys, ["evaluate", "potential", run / "best.pt", "--data", tmp_path / "x.xyz"])
    assert "holds a 'fluid' checkpoint, not a 'potential' one" in err
    from equiscale.train import CheckpointHeader

    torch.save({"model": {}, "header": CheckpointHeader("potential").as_dict()}, tmp_path / "potential.pt")
    err = _one_line_error(capsys, ["evaluate", "fluid", tmp_path / "potential.pt", "--data", fluid_file])
    assert "holds a 'potential' checkpoint, not a 'fluid' one" in err


LOUD_APPLICATION = '''
import sys
from dataclasses import dataclass
from equiscale import cli
from equiscale.applications import Application, Command
from equiscale.settings import Settings, setting

@dataclass
class Loud(Settings):
    lines: int = setting(200000, help="lines to print")

def run(settings):
    for i in range(settings.lines):
        print(f"line {i}")
    return 0

APP = Application("loud", "prints a lot", commands=(Command("data", "loud", Loud, run="loud:run", help="print"),))
if __name__ == "__main__":
    sys.exit(cli.main(["data", "loud"], applications=[APP]))
'''


def test_a_closed_standard_output_ends_quietly(tmp_path):
    """`equiscale ... | head`: the reader closing the pipe is a normal way to stop, not an error."""
    import subprocess
    import sys

    (tmp_path / "loud.py").write_text(LOUD_APPLICATION)
    process = subprocess.Popen([sys.executable, "loud.py"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline() == b"line 0\n"
    process.stdout.close()  # like `head -1`
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0 and err == "", err
