"""Checkpoint files: the header round trip, and one clear line for every unusable file."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import equiscale
from equiscale.train import FORMAT, CheckpointHeader, inference_weights, load_checkpoint, save_checkpoint


@dataclass
class _Settings:
    width: int = 8
    group: str = "C4"


def _save(path, kind="fluid", **header):
    head = CheckpointHeader(kind, _Settings(), {"scale": 2.5}, torch.float64).as_dict() | header
    save_checkpoint(path, {"header": head, "model": {"w": torch.ones(2)}})
    return path


def test_header_round_trip(tmp_path):
    header = CheckpointHeader("fluid", _Settings(width=4), {"scale": 2.5}, torch.float64)
    stored = header.as_dict()
    assert stored == {"kind": "fluid", "format": FORMAT, "library": equiscale.__version__,
                      "settings": {"width": 4, "group": "C4"}, "statistics": {"scale": 2.5}, "dtype": "float64"}
    save_checkpoint(tmp_path / "a.pt", {"header": stored, "model": {"w": torch.ones(2)}})
    state = load_checkpoint(tmp_path / "a.pt", kind="fluid")
    assert CheckpointHeader.from_dict(state["header"]) == CheckpointHeader("fluid", {"width": 4, "group": "C4"},
                                                                           {"scale": 2.5}, "float64")
    assert torch.equal(inference_weights(state)["w"], torch.ones(2))
    assert inference_weights({"model": {"w": 1}, "ema": {"w": 2}}) == {"w": 2}
    with pytest.raises(ValueError, match="no model weights"):
        inference_weights({"header": stored})
    with pytest.raises(ValueError, match="checkpoint kind"):
        CheckpointHeader("")


def _message(path, **options) -> str:
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        load_checkpoint(path, **options)
    text = str(error.value)
    assert "\n" not in text and str(path) in text
    return text


def test_each_unusable_file_gets_its_line(tmp_path):
    assert "does not exist" in _message(tmp_path / "missing.pt")
    (tmp_path / "notes.pt").write_text("epochs: 3\nwidth: 8\n")
    assert "notes.pt cannot be read: it is not an equiscale checkpoint (it looks like a text file)" in _message(
        tmp_path / "notes.pt")
    (tmp_path / "settings.json").write_text(json.dumps({"width": 8}))
    assert "it looks like a JSON file" in _message(tmp_path / "settings.json")
    np.savez(tmp_path / "data.npz", a=np.zeros(3))
    assert "it looks like a numpy .npz file" in _message(tmp_path / "data.npz")
    (tmp_path / "data.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert "it looks like an HDF5 file" in _message(tmp_path / "data.h5")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert "it is empty" in _message(tmp_path / "empty.pt")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 4)
    assert "it is not a torch file" in _message(tmp_path / "random.pt")

    whole = _save(tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    assert "cut.pt cannot be read: the file is truncated or damaged" in _message(tmp_path / "cut.pt")

    torch.save({"model": {}}, tmp_path / "bare.pt")
    assert "bare.pt is not an equiscale checkpoint: it has no header" in _message(tmp_path / "bare.pt")
    assert load_checkpoint(tmp_path / "bare.pt", require_header=False) == {"model": {}}
    torch.save([1, 2], tmp_path / "list.pt")
    assert "it holds a list, not a dict" in _message(tmp_path / "list.pt")

    _save(tmp_path / "future.pt", format=FORMAT + 1, library="9.0")
    assert (f"future.pt was written by equiscale 9.0, checkpoint format {FORMAT + 1}; this version "
            f"({equiscale.__version__}) reads up to {FORMAT}") in _message(tmp_path / "future.pt")
    _save(tmp_path / "fluid.pt")
    assert "fluid.pt holds a 'fluid' checkpoint, not a 'potential' one" in _message(tmp_path / "fluid.pt", kind="potential")
    assert load_checkpoint(tmp_path / "fluid.pt")["header"]["kind"] == "fluid"


def test_a_text_file_cut_inside_a_character_is_still_text(tmp_path):
    (tmp_path / "utf8.pt").write_bytes(("é" * 400).encode())  # the 512-byte read splits no character here,
    (tmp_path / "cut.pt").write_bytes(b"a" + ("é" * 400).encode())  # but here it does
    assert "text file" in _message(tmp_path / "utf8.pt") and "text file" in _message(tmp_path / "cut.pt")
