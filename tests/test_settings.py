"""One settings dataclass per command: options, --config files and validation derived from it."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import ClassVar

import pytest

from equiscale.settings import (Settings, TrainingSettings, add_arguments, fraction, merge, positive, resolve,
                                setting)


@dataclass
class Example(Settings):
    data: str = setting(None, help="input file", required=True, metavar="FILE")
    width: int = setting(8, help="channels", check=positive)
    share: float = setting(1.0, help="fraction of the data", check=fraction)
    model: str = setting("gcnn", help="which model", choices=("gcnn", "cnn"))
    lr: float | None = setting(None, help="learning rate", check=positive, default_text="from the model")
    quiet: bool = setting(False, help="no progress bars")
    figures: bool = setting(True, help="write figures")


@dataclass
class WithRuns(Settings):
    runs: list[str] = setting(None, help="run directories", positional=True, required=True)
    rollout: int = setting(25, help="steps", check=positive)


@dataclass
class Train(TrainingSettings):
    default_epochs: ClassVar[int] = 7
    data: str = setting("x.npz", help="input file")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of exiting so the message can be read
        raise ValueError(message)


def _parser(cls) -> argparse.ArgumentParser:
    parser = _Parser(prog="test")
    add_arguments(parser, cls)
    return parser


def _parse(cls, argv):
    args = _parser(cls).parse_args(argv)
    return resolve(cls, args, getattr(args, "config", None))


def test_options_come_from_the_fields_with_their_defaults_in_the_help():
    help_text = " ".join(_parser(Example).format_help().split())
    for expected in ("--data FILE", "--width WIDTH", "channels (default 8)", "fraction of the data (default 1)",
                     "{gcnn,cnn}", "learning rate (default from the model)", "--quiet", "--no-figures",
                     "write figures (default on)", "input file (required here or in --config)", "--config FILE.yaml"):
        assert expected in help_text, expected


def test_only_given_options_override_the_defaults():
    settings = _parse(Example, ["--data", "a.npz", "--width", "3", "--quiet", "--no-figures"])
    assert settings == Example(data="a.npz", width=3, quiet=True, figures=False)
    assert _parse(Example, ["--data", "a.npz"]) == Example(data="a.npz")


@pytest.mark.parametrize("argv, message", [
    (["--width", "0"], "must be a positive integer, got 0"),
    (["--width", "two"], "must be an integer, got 'two'"),
    (["--share", "1.5"], "must be in (0, 1], got 1.5"),
    (["--lr", "nan"], "must be a finite number"),
    (["--model", "mlp"], "invalid choice: 'mlp'"),
])
def test_bad_values_on_the_command_line_are_usage_errors(argv, message):
    with pytest.raises(ValueError, match="argument --") as error:
        _parser(Example).parse_args(["--data", "a", *argv])
    assert message in str(error.value)


def test_a_missing_required_setting_says_how_to_give_it():
    with pytest.raises(ValueError, match=r"no data: pass --data \(or set 'data:' in the --config file\)"):
        _parse(Example, [])


def test_construction_in_python_is_validated_too():
    with pytest.raises(ValueError, match="setting 'width' must be a positive integer, got -1"):
        Example(data="a", width=-1)
    with pytest.raises(ValueError, match="setting 'width' must be an integer, got 2.5"):
        Example(data="a", width=2.5)
    with pytest.raises(ValueError, match="setting 'model' must be one of gcnn, cnn"):
        Example(data="a", model="mlp")


def test_positional_lists():
    settings = _parse(WithRuns, ["a", "b", "--rollout", "3"])
    assert settings.runs == ["a", "b"] and settings.rollout == 3
    with pytest.raises(ValueError, match="required: RUNS"):
        _parser(WithRuns).parse_args([])


def test_precedence_defaults_saved_config_command_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("width: 5\nshare: 0.5\nmodel: cnn\n")
    saved = {"width": 2, "share": 0.25, "lr": 0.1, "data": "saved.npz", "removed_setting": 1}
    settings = _parse(Example, ["--config", str(config), "--model", "gcnn", "--data", "a"])
    assert (settings.width, settings.share, settings.model) == (5, 0.5, "gcnn")
    values = merge(Example, {"model": "gcnn"}, config, saved)
    assert values == {"width": 5, "share": 0.5, "lr": 0.1, "data": "saved.npz", "model": "gcnn"}


@pytest.mark.parametrize("text, message", [
    ("widht: 3\n", "unknown setting(s) widht; known: data, figures"),
    ("width: three\n", "setting 'width' must be an integer, got 'three'"),
    ("quiet: 1\n", "setting 'quiet' must be true or false"),
    ("- a\n- b\n", "must hold a mapping of setting names to values"),
    ("width: [1\n", "is not valid YAML"),
])
def test_bad_config_files_name_the_file_and_the_setting(tmp_path, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ValueError) as error:
        _parse(Example, ["--data", "a", "--config", str(config)])
    assert message in str(error.value) and str(config) in str(error.value)


def test_a_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _parse(Example, ["--data", "a", "--config", str(tmp_path / "none.yaml")])


def test_a_time_budget_without_epochs_trains_until_the_budget():
    assert Train(out="r").max_epochs == 7
    assert Train(out="r", max_time=60).max_epochs is None
    assert Train(out="r", max_time=60, epochs=3).max_epochs == 3
    assert "(default 7;" in " ".join(_parser(Train).format_help().split())


def test_a_resumed_run_keeps_its_settings_but_not_how_it_was_shown():
    saved = Train(out="r", max_time=5, seed=3, quiet=True, threads=2, resume=True).as_dict()
    settings = resolve(Train, {"out": "r", "resume": True}, saved=saved)
    assert (settings.max_time, settings.seed) == (5, 3)
    assert (settings.quiet, settings.threads) == (False, None)


def test_training_settings_check_the_shared_fields():
    with pytest.raises(ValueError, match="setting 'ema_decay' must be in"):
        Train(out="r", ema_decay=1.0)
    with pytest.raises(ValueError, match="setting 'clock' must be one of wall, process"):
        Train(out="r", clock="cpu")
    with pytest.raises(ValueError, match="no out: pass --out"):
        Train()
