"""`equiscale data dft` into a dataset directory: the manifest, lazy reading, resume, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pyscf")

from equiscale.quantum.commands import data_dft  # noqa: E402
from equiscale.quantum.data import DFTDataset, read_shard, shard_name, write_shard  # noqa: E402
from equiscale.quantum.geometry import displaced_frames, read_frames  # noqa: E402
from equiscale.quantum.settings import DataDFT  # noqa: E402

FAST = dict(basis="sto-3g", xc="hf", workers=1, quiet=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "water.dft"
    assert data_dft(DataDFT(out=str(out), frames=5, shard_size=2, **FAST)) == 0
    return out


def test_the_manifest_and_the_frames(dataset, capsys):
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["complete"] and manifest["frames"] == 5 and manifest["failed"] == 0
    assert manifest["shells"] == {"1": [0], "8": [0, 0, 1]}
    assert [s["frames"] for s in manifest["shards"]] == [2, 2, 1]
    assert "N(0, sigma^2)" in manifest["displacements"] and manifest["units"]["fock"] == "Hartree"
    data = DFTDataset(dataset)
    assert len(data) == 5 and data.complete and [list(r) for r in data.shard_ranges()] == [[0, 1], [2, 3], [4]]
    frame = data[3]
    assert frame["fock"].shape == frame["overlap"].shape == frame["density"].shape == (7, 7)
    assert frame["orbital_energies"].shape == (7,) and frame["dipole"].shape == (3,)
    assert frame["polarizability"].shape == (3, 3) and int(frame["frame_index"]) == 3
    assert data.irreps(frame["numbers"]).dim == 7
    expected = list(displaced_frames("water", 5))[3].positions
    np.testing.assert_allclose(frame["positions"], expected)
    assert len(data._cache) == 1  # only the shard that was read is in memory
    tensors = DFTDataset(dataset, torch=True)[0]
    assert str(tensors["fock"].dtype) == "torch.float64"


def test_the_same_command_computes_only_what_is_missing(dataset, tmp_path, capsys):
    out = tmp_path / "copy.dft"
    out.mkdir()
    for path in dataset.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    before = read_shard(out / shard_name(0))
    (out / shard_name(1)).unlink()  # as if interrupted
    (out / shard_name(2)).write_bytes((dataset / shard_name(2)).read_bytes()[:100])  # truncated
    assert data_dft(DataDFT(out=str(out), frames=5, shard_size=2, **FAST)) == 0
    output = capsys.readouterr().out
    assert "3 labelled now" in output and "truncated or corrupt: computing it again" in output
    after = read_shard(out / shard_name(0))
    np.testing.assert_array_equal(before["fock"], after["fock"])  # untouched
    np.testing.assert_allclose(DFTDataset(out)[2]["fock"], DFTDataset(dataset)[2]["fock"], atol=1e-7)
    with pytest.raises(ValueError, match=r"written with other settings \(basis: 'sto-3g' -> '6-31g'\)"):
        data_dft(DataDFT(out=str(out), frames=5, shard_size=2, **{**FAST, "basis": "6-31g"}))


def test_frames_whose_scf_does_not_converge_are_counted_and_skipped(tmp_path, capsys):
    out = tmp_path / "failed.dft"
    assert data_dft(DataDFT(out=str(out), frames=2, max_cycle=1, polarizability=False, **FAST)) == 0
    assert "2 frames skipped (SCF did not converge" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frames"] == 0 and manifest["failed"] == 2 and [f[0] for f in manifest["failures"]] == [0, 1]
    assert len(DFTDataset(out)) == 0


def test_structures_from_a_file(tmp_path):
    from ase import Atoms
    from ase.io import write

    frames = list(displaced_frames("water", 2, seed=3))
    path = tmp_path / "md.xyz"
    write(path, [Atoms(numbers=f.numbers, positions=f.positions) for f in frames])
    assert [len(f.numbers) for f in read_frames(str(path))] == [3, 3]
    out = tmp_path / "md.dft"
    assert data_dft(DataDFT(out=str(out), structures=str(path), polarizability=False, **FAST)) == 0
    data = DFTDataset(out)
    assert len(data) == 2 and data.manifest["molecule"] == "md.xyz"
    np.testing.assert_allclose(data[1]["positions"], frames[1].positions, atol=1e-6)
    # several molecules in one file: a shard never mixes them
    mixed = tmp_path / "mixed.xyz"
    methane = list(displaced_frames("methane", 1))[0]
    write(mixed, [Atoms(numbers=f.numbers, positions=f.positions) for f in (frames[0], methane, frames[1])])
    assert data_dft(DataDFT(out=str(tmp_path / "mixed.dft"), structures=str(mixed), shard_size=5,
                            polarizability=False, **FAST)) == 0
    data = DFTDataset(tmp_path / "mixed.dft")
    assert [len(r) for r in data.shard_ranges()] == [1, 1, 1] and data.shells == {1: [0], 6: [0, 0, 1], 8: [0, 0, 1]}
    assert data[1]["fock"].shape == (9, 9) and list(data[1]["numbers"]) == [6, 1, 1, 1, 1]


def test_bad_input_gives_one_line(dataset, tmp_path):
    with pytest.raises(ValueError, match="unknown molecule 'unobtainium'"):
        data_dft(DataDFT(out=str(tmp_path / "x.dft"), molecule="unobtainium", **FAST))
    with pytest.raises(ValueError, match="basis 'sto-2g': Unknown basis"):
        data_dft(DataDFT(out=str(tmp_path / "x.dft"), **{**FAST, "basis": "sto-2g"}))
    from ase import Atoms
    from ase.io import write

    write(tmp_path / "xe.xyz", Atoms("Xe"))
    with pytest.raises(ValueError, match="frame 0: basis 'sto-3g' does not cover every element of Xe"):
        data_dft(DataDFT(out=str(tmp_path / "x.dft"), structures=str(tmp_path / "xe.xyz"), **FAST))
    assert not (tmp_path / "x.dft").exists()  # refused before anything is written
    with pytest.raises(ValueError, match="structure file .* does not exist"):
        data_dft(DataDFT(out=str(tmp_path / "x.dft"), structures=str(tmp_path / "none.xyz"), **FAST))
    from equiscale.quantum.geometry import Frame
    from equiscale.quantum.labels import label_dataset

    nan = Frame(np.array([8, 1, 1]), np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="frame 1 has NaN or infinite positions"):
        label_dataset(tmp_path / "x.dft", [list(displaced_frames("water", 1))[0], nan], {"settings": {}},
                      basis="sto-3g", xc="hf")
    with pytest.raises(FileNotFoundError, match="has no manifest.json"):
        DFTDataset(tmp_path)
    # a shard whose orbital count does not match the manifest's basis
    broken = tmp_path / "broken.dft"
    broken.mkdir()
    (broken / "manifest.json").write_text((dataset / "manifest.json").read_text())
    arrays = read_shard(dataset / shard_name(0))
    for key in ("fock", "overlap", "density"):
        arrays[key] = arrays[key][:, :6, :6]
    write_shard(broken, 0, {k: v for k, v in arrays.items() if not k.startswith("failed_")})
    with pytest.raises(ValueError, match="6 orbitals per molecule, but the basis described in manifest.json gives 7"):
        DFTDataset(broken)[0]
    (broken / shard_name(0)).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        DFTDataset(broken)[0]
    with pytest.raises(FileNotFoundError, match="shard-00001.npz is missing"):
        DFTDataset(broken)[2]


def _applications():
    """The installed quantum application, or one declaring just `data dft` until app.py is registered."""
    from equiscale.applications import Application, Command, discover

    installed = [a for a in discover() if any(c.verb == "data" and c.task == "dft" for c in a.commands)]
    command = Command("data", "dft", DataDFT, run="equiscale.quantum.commands:data_dft", help="DFT labels")
    return installed or [Application(name="quantum", description="test", commands=(command,))]


def test_the_command_line(tmp_path, capsys):
    from equiscale import cli

    out = tmp_path / "cli.dft"
    argv = ["data", "dft", "--molecule", "water", "--frames", "2", "--basis", "sto-3g", "--xc", "hf", "--workers", "1",
            "--no-polarizability", "--quiet", "--out", str(out)]
    assert cli.main(argv, applications=_applications()) == 0
    assert "2 frames of water (hf/sto-3g)" in capsys.readouterr().out and len(DFTDataset(out)) == 2
    assert cli.main(argv[:-1] + [str(tmp_path / "x.dft"), "--xc", "nonsense"], applications=_applications()) != 0
    error = capsys.readouterr().err.strip()
    assert "unknown functional 'nonsense'" in error and len(error.splitlines()) == 1
