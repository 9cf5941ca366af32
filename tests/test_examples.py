"""The scripts in examples/, one per scale, run with tiny settings and measure what they claim."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _main(name: str):
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]


def test_every_scale_has_an_example():
    names = {p.name for p in EXAMPLES.glob("*.py")}
    assert {"continuum_fluid.py", "atomistic_potential.py", "o3_tensor_properties.py", "steerable_fields.py"} <= names


def test_continuum_example(tmp_path, capsys):
    result = _main("continuum_fluid.py")(["--tiny", "--out", str(tmp_path)])
    assert result["steps"] > 0 and 0 < result["rollout_5"] < 10
    assert result["equivariance"] < 1e-10
    assert (tmp_path / "gcnn" / "best.pt").is_file()
    assert "equivariance error under C(4), float64" in capsys.readouterr().out


def test_atomistic_example(tmp_path, capsys):
    pytest.importorskip("ase")
    result = _main("atomistic_potential.py")(["--tiny", "--out", str(tmp_path)])
    assert 0 < result["force_mae"] < 2000  # meV/A, a potential trained for seconds
    assert abs(result["energy_change"]) < 5  # meV/atom over 10 fs of NVE: energy is conserved
    assert "fs of NVE dynamics" in capsys.readouterr().out


def test_o3_example(capsys):
    result = _main("o3_tensor_properties.py")(["--tiny"])
    assert result["cartesian"] < 1e-12 and result["irreps"] < 1e-12
    assert "D^1(R) == R: True" in capsys.readouterr().out


def test_steerable_example(capsys):
    result = _main("steerable_fields.py")(["--tiny"])
    assert result["kernels"] == 10  # vector -> vector, rings 0, 1, 2, J <= min(2 r, 2): 2 + 4 + 4
    assert result["constraint"] < 1e-12 and result["quarter_turns"] < 1e-12 and result["export"] < 1e-12
    assert "equivariance error under 90-degree rotations" in capsys.readouterr().out


def test_examples_run_as_scripts_with_the_environment_switch(monkeypatch, capsys):
    monkeypatch.setenv("EQUISCALE_EXAMPLE_TINY", "1")
    monkeypatch.setattr(sys, "argv", ["o3_tensor_properties.py"])
    runpy.run_path(str(EXAMPLES / "o3_tensor_properties.py"), run_name="__main__")
    assert "0e + 2e output under O(3): error" in capsys.readouterr().out
