"""Streaming training frames from the shards: the same numbers as frames held in memory, each shard
loaded once per epoch, and never more than ``window`` shards resident."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

pytest.importorskip("pyscf")  # the tiny datasets are labelled with PySCF

from equiscale.quantum import data as data_module  # noqa: E402
from equiscale.quantum import training  # noqa: E402
from equiscale.quantum.settings import TrainHamiltonian  # noqa: E402
from equiscale.quantum.stream import ShardFrames, ShardWindowSampler  # noqa: E402
from equiscale.quantum.training import load_frames, model_statistics, train_hamiltonian  # noqa: E402

from .hamiltonian_data import water_dataset  # noqa: E402

TINY = dict(channels=4, pair_channels=2, radial_hidden=8, quiet=True, threads=1)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return water_dataset(tmp_path_factory.mktemp("dft"))  # 8 frames in 2 shards of 4


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    return water_dataset(tmp_path_factory.mktemp("dft"), frames=20)  # 5 shards of 4


@pytest.fixture
def spy(monkeypatch):
    """Counts shard reads and records the most shards any one reader held."""
    record = {"reads": [], "resident": 0}
    read, load = data_module.read_shard, data_module.DFTDataset._load

    def counting_read(path, keys=None):
        record["reads"].append(str(path))
        return read(path, keys)

    def watching_load(self, shard):
        arrays = load(self, shard)
        record["resident"] = max(record["resident"], len(self._cache))
        return arrays

    monkeypatch.setattr(data_module, "read_shard", counting_read)
    monkeypatch.setattr(data_module.DFTDataset, "_load", watching_load)
    return record


_STREAMED_SPLIT = training._split


def _in_memory_split(settings):
    """The frames of ``_split`` held in memory, as training read them before streaming."""
    train, valid, shells = _STREAMED_SPLIT(settings)
    extras = {"guess": settings.guess, "orbitals": settings.occupied_weight > 0}
    return (load_frames(settings.data, train.indices, **extras)[0],
            None if valid is None else load_frames(settings.data, valid.indices, **extras)[0], shells)


def test_streaming_trains_to_the_same_numbers_as_in_memory(small, tmp_path, monkeypatch, spy):
    options = dict(data=str(small), epochs=2, lr=1e-2, guess="core", occupied_weight=0.1, **TINY)
    streamed = train_hamiltonian(TrainHamiltonian(out=str(tmp_path / "s"), **options))
    assert spy["resident"] <= 2 and spy["reads"]
    monkeypatch.setattr(training, "_split", _in_memory_split)
    held = train_hamiltonian(TrainHamiltonian(out=str(tmp_path / "m"), **options))
    keys = sorted(k for k in streamed["history"][0] if "time" not in k)  # all but the clock
    assert {"loss", "val_loss", "occupied_mae_uha"} <= set(keys), keys
    first = [[epoch[k] for k in keys] for epoch in streamed["history"]]
    second = [[epoch[k] for k in keys] for epoch in held["history"]]
    assert len(first) == 2 and first == second, keys  # bit for bit: same frames, same order, same statistics


def test_statistics_in_one_streaming_pass_equal_in_memory(large, monkeypatch, spy):
    monkeypatch.setattr(training, "STATISTICS_FRAMES", 5)  # later frames come without the guess
    indices = [17, 2, 9, 4, 11, 0, 13, 6]
    frames = ShardFrames(large, indices, guess="core")
    spy["reads"].clear()
    streamed = model_statistics(frames.frames(5), frames.shells)
    assert len(spy["reads"]) == 5  # every shard once: frames 0-6, 9-11, 13, 17 span all 5
    held, shells = load_frames(large, indices, guess="core")
    assert streamed == model_statistics(held, shells) and streamed["frames"] == len(indices)
    plain = model_statistics(load_frames(large, indices)[0], shells)
    assert plain["blocks"] != streamed["blocks"]  # the guess was used where it must be


@pytest.mark.parametrize("window", [1, 2])
def test_shard_window_shuffling_bounds_memory(large, spy, window):
    frames = ShardFrames(large, range(1, 20), window=window)  # 19 frames, 5 shards
    loader = DataLoader(frames, batch_size=3, sampler=ShardWindowSampler(frames), collate_fn=list)
    every = sorted(float(frames[k]["energy"]) for k in range(len(frames)))
    assert len(set(every)) == 19
    frames.reader._cache.clear()
    torch.manual_seed(0)
    orders = []
    for epoch in range(2):
        spy["reads"].clear()
        orders.append([float(frame["energy"]) for batch in loader for frame in batch])
        assert sorted(orders[-1]) == every  # one epoch: every frame once
        # each shard loaded once per epoch (the last window's shards may still be cached from the epoch before)
        assert len(spy["reads"]) == 5 if epoch == 0 else 5 - window <= len(spy["reads"]) <= 5
    assert spy["resident"] <= window and orders[0] != orders[1]  # bounded, reshuffled every epoch
    runs = [frames.indices[p] // 4 for p in ShardWindowSampler(frames, window=1)]  # the shard of each frame
    assert len([k for k in range(1, 19) if runs[k] != runs[k - 1]]) == 4  # window 1: shard by shard


def test_window_follows_the_memory_budget(large, monkeypatch):
    from equiscale.quantum import stream

    frames = ShardFrames(large)
    size = max((large / f"shard-{k:05d}.npz").stat().st_size for k in range(5))
    assert stream.shard_window(frames.reader, budget=int(7.5 * size)) == 7
    assert stream.shard_window(frames.reader, guess=True, budget=int(7.5 * size)) == 5  # 7.5 / (4/3)
    assert stream.shard_window(frames.reader, budget=10) == 2  # never fewer than 2
    assert frames.window == frames.reader.cache_shards >= 5  # tiny shards: all of them fit the default budget
    monkeypatch.setattr(stream, "MEMORY_BUDGET", 3 * size)
    assert ShardFrames(large).reader.cache_shards == 3


def test_streamed_training_keeps_few_shards_resident(large, tmp_path, spy, monkeypatch):
    from equiscale.quantum import stream

    monkeypatch.setattr(stream, "MEMORY_BUDGET", 1)  # a window of 2 shards
    summary = train_hamiltonian(TrainHamiltonian(data=str(large), out=str(tmp_path / "r"), epochs=1, **TINY))
    assert summary["epochs"] == 1 and spy["resident"] <= 2
    # statistics (5 shards) + one training epoch (5) + one validation pass (the 2 held-out frames' shards)
    assert len(spy["reads"]) <= 5 + 5 + 2


def test_guess_side_files_are_written_once_checked_and_optional(tmp_path, monkeypatch):
    from equiscale.quantum import guess as guess_module
    from equiscale.quantum import stream

    root = water_dataset(tmp_path, frames=6, seed=7)  # shards of 4 and 2 frames, no side files yet
    calls = []
    compute = guess_module.frame_guess
    monkeypatch.setattr(guess_module, "frame_guess", lambda *a: calls.append(1) or compute(*a))
    first = ShardFrames(root, [5, 1], guess="sap")
    expected = [compute(f["numbers"], f["positions"], "sto-3g", "sap") for f in (first.reader[1], first.reader[5])]
    assert [abs(first[k]["guess"] - e).max() for k, e in enumerate(expected)] == [0.0, 0.0]
    assert len(calls) == 6 and sorted(p.name for p in (root / "guess-sap").iterdir()) == ["shard-00000.npz",
                                                                                          "shard-00001.npz"]
    calls.clear()
    again = ShardFrames(root, [5, 1], guess="sap")
    assert (again[1]["guess"] == first[1]["guess"]).all() and not calls  # read back, not computed
    side = root / "guess-sap" / "shard-00001.npz"
    stream._atomic_write(side, lambda file: __import__("numpy").savez(file, guess=expected[1][None] * 0,
                                                                       frame_index=[99]))
    assert (ShardFrames(root, [5], guess="sap")[0]["guess"] == expected[1]).all() and len(calls) == 2  # stale: redone
    side.write_bytes(b"truncated")
    assert (ShardFrames(root, [5], guess="sap")[0]["guess"] == expected[1]).all()
    calls.clear()

    def refuse(*args):
        raise PermissionError("read-only")

    monkeypatch.setattr(stream, "_atomic_write", refuse)
    core = ShardFrames(root, [0], guess="core")
    assert core[0]["guess"].shape == (7, 7) and not (root / "guess-core" / "shard-00000.npz").exists()
