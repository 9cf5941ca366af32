"""examples/grids_invariant_classifier.py (included in docs/tutorials/grids.md) runs and is invariant."""
from __future__ import annotations

import runpy
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "grids_invariant_classifier.py"


def test_the_classifier_example_is_invariant(capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = runpy.run_path(str(EXAMPLE), run_name="example")["main"](["--tiny"])
    finally:
        torch.set_num_threads(threads)
    assert result["invariance"] < 1e-12
    assert result["gcnn_turned"] == result["gcnn_upright"]  # same logits for every quarter turn
    assert result["cnn_upright"] > 0.5  # the data are learnable: the plain CNN learns the upright shapes
    out = capsys.readouterr().out
    assert "G-CNN logits under quarter turns, float64" in out and "quarter-turned" in out


def test_the_tutorial_includes_every_section_of_the_example():
    page = (EXAMPLE.parents[1] / "docs" / "tutorials" / "grids.md").read_text()
    code = EXAMPLE.read_text()
    for section in ("data", "model", "train", "check"):
        assert f"[start:{section}]" in code
        assert f'--8<-- "examples/grids_invariant_classifier.py:{section}"' in page
