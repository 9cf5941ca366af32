"""Training frames streamed from a DFT dataset's shards, with memory bounded independently of its size.

:class:`ShardFrames` is a torch ``Dataset`` over chosen frame indices of a dataset directory
(:class:`~equiscale.quantum.data.DFTDataset`, which keeps at most ``window`` shards loaded: by default
as many as fit :data:`MEMORY_BUDGET`, at least 2; :func:`shard_window`); each item
is a training frame (:func:`training_frame`: the arrays the loss needs, the guess and the true
orbitals when asked for, computed when the frame is read). :class:`ShardWindowSampler` shuffles so
that each shard is loaded once per epoch: the shard order is permuted, and the frames of each run of
``window`` consecutive shards (in that order) are permuted together, so at most ``window`` shards
are resident. When all the frames fit in one window the order is exactly the one
``DataLoader(shuffle=True)`` draws (same use of torch's global generator), so a dataset that fits the
budget (water in def2-SVP: ~15 KB per frame, so ~17,000 frames) trains to the same numbers streamed
as held in memory; a larger one mixes ``window`` shards at a time (e.g. 11 shards of 10 frames of
300 orbitals, 8 with a guess), which is why its order differs from a full permutation.

The guess (``--guess sap|core``) is cached in side files next to the shards (:class:`GuessCache`,
``<dataset>/guess-sap/shard-00000.npz``, one per shard, written atomically the first time a shard is
read): measured on one thread (CPU time, 2-core machine at load 6), the SAP guess costs 2.5 ms per
water frame and 13.7 ms per ethanol frame in def2-SVP, against 12.2 and 25.0 ms for one training
step of the default model per frame, so computing it every epoch would add 21% and 55% to training;
the side file adds one ``(n, n)`` matrix per frame to the three a shard stores, and is checked
against its shard's frame indices (recomputed when they differ). A dataset directory that cannot be
written to gets the guess computed whenever a shard is loaded. Reading a streamed frame (with the
cached guess and the orbitals) costs 0.4 ms of CPU per water frame, ~3% of its training step.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from equiscale.quantum.data import DFTDataset, _atomic_write, read_shard

__all__ = ["KEYS", "MEMORY_BUDGET", "shard_window", "training_frame", "GuessCache", "ShardFrames", "ShardWindowSampler"]

KEYS = ("numbers", "positions", "energy", "fock", "overlap", "orbital_energies", "dipole", "polarizability")
MEMORY_BUDGET = 256 * 2**20  # bytes of loaded shards (and their guesses) a training reader may hold


def shard_window(reader: DFTDataset, guess: bool = False, budget: int | None = None) -> int:
    """How many shards of ``reader`` fit ``budget`` bytes (default :data:`MEMORY_BUDGET`), at least 2.

    A shard's size in memory is its (uncompressed) file size, plus a third of it with ``guess``
    (one more of the three stored ``(n, n)`` matrices per frame).
    """
    budget = MEMORY_BUDGET if budget is None else budget
    sizes = [(reader.path / reader.shard_file(k)).stat().st_size for k in range(len(reader.shard_ranges()))]
    largest = max(sizes, default=1) * (4 / 3 if guess else 1)
    return max(2, int(budget // max(largest, 1)))


def training_frame(item: Mapping[str, Any], basis: str, guess: str = "none", orbitals: bool = False) -> dict[str, np.ndarray]:
    """The arrays of a dataset frame that training uses (:data:`KEYS`), plus the extras asked for.

    Args:
        item: a frame of :class:`~equiscale.quantum.data.DFTDataset` (numpy arrays).
        basis: the dataset's basis (for the guess).
        guess: also ``"guess"`` ``(n, n)``: :func:`~equiscale.quantum.guess.frame_guess` of that kind
            (``"none"``: not).
        orbitals: also ``"orbitals"`` ``(n, n)``: the true ``C`` of ``F C = S C eps`` (``C^T S C = 1``).

    Returns:
        A dict of numpy arrays.
    """
    frame = {k: np.asarray(item[k]) for k in KEYS if k in item}
    if guess != "none":
        from equiscale.quantum.guess import frame_guess

        frame["guess"] = frame_guess(frame["numbers"], frame["positions"], basis, guess)
    if orbitals:
        import scipy.linalg

        frame["orbitals"] = scipy.linalg.eigh(frame["fock"], frame["overlap"])[1]
    return frame


class GuessCache:
    """The guess of each frame of a dataset, one side file per shard (``guess-<kind>/<shard file>``).

    Args:
        reader: the dataset.
        kind: the guess (:data:`~equiscale.quantum.guess.GUESSES`, not ``"none"``).
        window: the most shards' guesses kept in memory.
    """

    def __init__(self, reader: DFTDataset, kind: str, window: int = 2) -> None:
        self.reader, self.kind, self.window = reader, kind, max(1, window)
        self.directory = reader.path / f"guess-{kind}"
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getitem__(self, index: int) -> np.ndarray:
        """The guess ``(n, n)`` Hartree of frame ``index`` (our AO basis)."""
        shard, local = self.reader.locate(index)
        if shard not in self._cache:
            self._cache[shard] = self._load(shard)
            while len(self._cache) > self.window:
                self._cache.popitem(last=False)
        self._cache.move_to_end(shard)
        return self._cache[shard][local]

    def _load(self, shard: int) -> np.ndarray:
        arrays = self.reader.shard_arrays(shard)
        path = self.directory / self.reader.shard_file(shard)
        if path.is_file():
            try:
                saved = read_shard(path)
                if np.array_equal(saved["frame_index"], arrays["frame_index"]) and \
                        saved["guess"].shape == arrays["fock"].shape:
                    return saved["guess"]
            except (ValueError, KeyError):
                pass  # truncated or of other frames: computed again below
        from equiscale.quantum.guess import frame_guess

        guess = np.stack([frame_guess(arrays["numbers"], p, self.reader.basis, self.kind) for p in arrays["positions"]])
        try:
            self.directory.mkdir(exist_ok=True)
            _atomic_write(path, lambda file: np.savez(file, guess=guess, frame_index=arrays["frame_index"]))
        except OSError:
            pass  # a read-only dataset: the guess is computed each time the shard is loaded
        return guess


class ShardFrames(Dataset):
    """Frames ``indices`` of a DFT dataset directory (sorted, so reading in order loads each shard once).

    Args:
        path: the dataset directory.
        indices: frame indices (default all); duplicates are dropped.
        guess: the guess kind added to each frame (:func:`training_frame`).
        orbitals: add the true orbitals to each frame.
        window: the most shards kept loaded (the reader's cache; default :func:`shard_window`).

    ``self[k]`` is :func:`training_frame` of frame ``self.indices[k]``.
    """

    def __init__(self, path: str | Path, indices: Sequence[int] | None = None, guess: str = "none",
                 orbitals: bool = False, window: int | None = None) -> None:
        self.reader = DFTDataset(path)
        window = shard_window(self.reader, guess != "none") if window is None else window
        self.reader.cache_shards = max(1, window)
        total = len(self.reader)
        self.indices = sorted({int(i) for i in (range(total) if indices is None else indices)})
        self.guess, self.orbitals, self.window = guess, orbitals, max(1, window)
        self.guesses = None if guess == "none" else GuessCache(self.reader, guess, window)
        self.shells = self.reader.shells
        shard_of = np.searchsorted([r.stop for r in self.reader.shard_ranges()], self.indices, side="right")
        self.groups: list[list[int]] = []  # positions in self.indices, per shard that holds any
        for position, shard in enumerate(shard_of.tolist()):
            if position == 0 or shard != shard_of[position - 1]:
                self.groups.append([])
            self.groups[-1].append(position)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, np.ndarray]:
        return self._frame(self.indices[position], True)

    def _frame(self, index: int, extras: bool) -> dict[str, np.ndarray]:
        frame = training_frame(self.reader[index], self.reader.basis, "none", self.orbitals and extras)
        if self.guesses is not None and extras:
            frame["guess"] = self.guesses[index]
        return frame

    def frames(self, extras: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """All frames in order (one pass over the shards); only the first ``extras`` (default all)
        with the guess and orbitals, the rest without (what :func:`model_statistics` needs)."""
        for position, index in enumerate(self.indices):
            yield self._frame(index, extras is None or position < extras)


class ShardWindowSampler(Sampler[int]):
    """Shard-aware shuffling of a :class:`ShardFrames`: each epoch permutes the shards, then the frames
    within each run of ``window`` consecutive shards, so at most ``window`` shards are loaded at a time.

    Args:
        frames: the dataset.
        window: shards shuffled together (default: the dataset's ``window``).

    Each epoch draws one seed from torch's global generator, like ``RandomSampler``; with one window
    holding every shard the order is ``torch.randperm(len(frames))`` of that seed, i.e. the order
    ``DataLoader(shuffle=True)`` gives.
    """

    def __init__(self, frames: ShardFrames, window: int | None = None) -> None:
        self.groups = frames.groups
        self.window = max(1, window or frames.window)

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)

    def __iter__(self) -> Iterator[int]:
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator().manual_seed(seed)
        if len(self.groups) <= self.window:
            yield from torch.randperm(len(self), generator=generator).tolist()
            return
        order = torch.randperm(len(self.groups), generator=generator).tolist()
        for start in range(0, len(order), self.window):
            members = [p for g in order[start:start + self.window] for p in self.groups[g]]
            yield from (members[k] for k in torch.randperm(len(members), generator=generator).tolist())
