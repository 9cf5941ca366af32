"""The `equiscale` command: the demo runs and reports machine-precision errors; bad usage fails cleanly."""
import pytest

from equiscale import cli
from equiscale.demo import run_demo


def test_demo_quick_reports_equivariance_at_machine_precision(capsys):
    rows = run_demo(quick=True)
    assert len(rows) >= 6
    for name, group, error64, error32 in rows:
        assert error64 < 1e-12, (name, error64)
        assert error32 < 1e-5, (name, error32)
    assert "spherical harmonics" in capsys.readouterr().out


def test_cli_demo_exit_status():
    assert cli.main(["demo", "--quick"]) == 0


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_verb_lists_its_tasks():
    parser = cli.build_parser()
    help_text = parser.format_help()
    for verb in ("demo", "data", "train", "evaluate"):
        assert verb in help_text
