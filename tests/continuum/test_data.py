"""The fluid .npz format, its checks, generation with resume, and `equiscale data fluid`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equiscale import cli
from equiscale.continuum.app import APPLICATION
from equiscale.continuum import data as data_module
from equiscale.continuum.data import FluidData, generate_fluid, load_fluid, save_fluid


@pytest.fixture
def fluid_cli():
    return lambda argv: cli.main(argv, applications=[APPLICATION])


def test_data_command_writes_the_documented_format(fluid_cli, tmp_path, capsys):
    out = tmp_path / "fluid.npz"
    code = fluid_cli(["data", "fluid", "--out", str(out), "--trajectories", "3", "--steps", "2",
                      "--resolution", "16", "--seed", "1", "--quiet", "--threads", "1"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    with np.load(out) as archive:
        assert archive["vorticity"].dtype == np.float32 and archive["vorticity"].shape == (3, 3, 16, 16)
        assert float(archive["dt"]) == 0.2 and float(archive["viscosity"]) == 5e-3
        assert abs(float(archive["domain_size"]) - 2 * np.pi) < 1e-12
    loaded = load_fluid(out)
    assert loaded.trajectories == 3 and loaded.frames == 3 and loaded.resolution == 16
    assert not (out.parent / "fluid.npz.partial").exists()
    w = loaded.vorticity
    assert np.abs(w[:, 0]).max() > 0 and not np.allclose(w[:, 0], w[:, -1])


def test_generation_resumes_and_does_not_depend_on_chunking(tmp_path, monkeypatch):
    reference = generate_fluid(tmp_path / "a.npz", trajectories=3, steps=2, resolution=16, chunk=3, progress=False)
    calls = []
    original = data_module.simulate_vorticity

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # interrupted during the second chunk
        return original(*args, **kwargs)

    monkeypatch.setattr(data_module, "simulate_vorticity", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_fluid(tmp_path / "b.npz", trajectories=3, steps=2, resolution=16, chunk=1, progress=False)
    assert (tmp_path / "b.npz.partial" / "chunk_000000.npy").exists() and not (tmp_path / "b.npz").exists()
    resumed = generate_fluid(tmp_path / "b.npz", trajectories=3, steps=2, resolution=16, chunk=1, progress=False)
    assert len(calls) == 4  # 2 before the interruption, then only the 2 missing chunks
    np.testing.assert_allclose(resumed.vorticity, reference.vorticity, rtol=0, atol=1e-6)


def test_changed_settings_start_over(tmp_path):
    generate_fluid(tmp_path / "c.npz", trajectories=1, steps=1, resolution=16, progress=False)
    partial = tmp_path / "c.npz.partial"
    partial.mkdir()
    (partial / "settings.json").write_text("{}")
    np.save(partial / "chunk_000000.npy", np.full((1, 2, 16, 16), 7.0, np.float32))
    data = generate_fluid(tmp_path / "c.npz", trajectories=1, steps=1, resolution=16, progress=False)
    assert np.abs(data.vorticity).max() != 7.0


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays,message", [
    ({"omega": np.zeros((1, 2, 4, 4))}, "no 'vorticity'"),
    ({"vorticity": np.zeros((1, 2, 4, 5))}, "square"),
    ({"vorticity": np.zeros((2, 4, 4))}, "\\[N, T \\+ 1, R, R\\]"),
    ({"vorticity": np.zeros((1, 1, 4, 4))}, "2 frames"),
    ({"vorticity": np.zeros((1, 2, 4, 4), dtype=np.int32)}, "floating point"),
    ({"vorticity": np.zeros((1, 2, 4, 4)), "dt": np.zeros(3)}, "'dt' must be a single number"),
])
def test_bad_files_are_named(tmp_path, arrays, message):
    with pytest.raises(ValueError, match=message):
        load_fluid(_write(tmp_path / "bad.npz", **arrays))


def test_nans_are_located(tmp_path):
    w = np.zeros((2, 3, 4, 4), np.float32)
    w[1, 2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN .*trajectory 1, frame 2"):
        load_fluid(_write(tmp_path / "nan.npz", vorticity=w))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_fluid(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_fluid(tmp_path / "text.npz")


def test_cli_reports_bad_files_in_one_line(fluid_cli, tmp_path, capsys):
    path = _write(tmp_path / "bad.npz", omega=np.zeros((1, 2, 4, 4)))
    code = fluid_cli(["train", "fluid", "--data", str(path), "--model", "cnn", "--out", str(tmp_path / "run")])
    assert code == 2 and "no 'vorticity'" in capsys.readouterr().err


def test_save_then_load_round_trip(tmp_path):
    w = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    save_fluid(tmp_path / "x.npz", FluidData(w, dt=0.1, viscosity=1e-3))
    loaded = load_fluid(tmp_path / "x.npz")
    assert np.array_equal(loaded.vorticity, w) and loaded.dt == 0.1 and loaded.viscosity == 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]  # no temporary file left behind


def test_a_file_in_another_layout_gives_the_same_training_data(tmp_path):
    from equiscale.continuum.training import FluidWindows

    ours = generate_fluid(tmp_path / "ours.npz", trajectories=2, steps=3, resolution=8, progress=False)
    w = ours.vorticity
    assert not np.allclose(w, np.swapaxes(w, -1, -2))  # a transpose would be visible
    np.savez(tmp_path / "xy.npz", vorticity=np.transpose(w, (0, 1, 3, 2)), layout="trajectory time x y", dt=0.2)
    np.savez(tmp_path / "txy.npz", vorticity=np.transpose(w, (1, 0, 3, 2)), layout="t, n, x, y")
    for name in ("xy.npz", "txy.npz"):
        loaded = load_fluid(tmp_path / name)
        assert np.array_equal(loaded.vorticity, w) and loaded.vorticity.flags["C_CONTIGUOUS"]
        assert "transposed to [trajectory time y x]" in loaded.layout_note
        for a, b in zip(FluidWindows(torch.from_numpy(loaded.vorticity), 2), FluidWindows(torch.from_numpy(w), 2)):
            assert torch.equal(a, b)
    assert load_fluid(tmp_path / "ours.npz").source_layout == "trajectory time y x"
    np.savez(tmp_path / "bare.npz", vorticity=w)
    assert "no 'layout' entry" in load_fluid(tmp_path / "bare.npz").layout_note
    assert np.array_equal(load_fluid(tmp_path / "bare.npz").vorticity, w)


@pytest.mark.parametrize("layout, message", [("trajectory time x x", "must name the axes trajectory, time, x and y"),
                                             (np.array(["a", "b"]), "'layout' must be one string")])
def test_a_bad_layout_is_one_clear_error(tmp_path, layout, message):
    np.savez(tmp_path / "bad.npz", vorticity=np.zeros((1, 2, 4, 4), np.float32), layout=layout)
    with pytest.raises(ValueError, match=message):
        load_fluid(tmp_path / "bad.npz")
