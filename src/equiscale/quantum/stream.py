"""Training frames streamed from a DFT dataset's shards, with memory bounded independently of its size.

:class:`ShardFrames` is a torch ``Dataset`` over chosen frame indices of a dataset directory
(:class:`~equiscale.quantum.data.DFTDataset`, which keeps at most ``window`` shards loaded); each item
is a training frame (:func:`training_frame`: the arrays the loss needs, the guess and the true
orbitals when asked for, computed when the frame is read). :class:`ShardWindowSampler` shuffles so
that each shard is loaded once per epoch: the shard order is permuted, and the frames of each run of
``window`` consecutive shards (in that order) are permuted together, so at most ``window`` shards
are resident. When all the frames fit in one window the order is exactly the one
``DataLoader(shuffle=True)`` draws (same use of torch's global generator), so a small dataset trains
to the same numbers streamed as held in memory.

Why the guess is computed per frame rather than stored in a side file: it costs 25-37 ms per frame
(:mod:`equiscale.quantum.guess`), less than one training step of the same frame (see
``benchmarks/RESULTS.md``), while a side file doubles the disk a dataset takes (one more dense
``(n, n)`` float64 matrix per frame) and must be kept in step with the shards and the guess kind.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from equiscale.quantum.data import DFTDataset

__all__ = ["KEYS", "training_frame", "ShardFrames", "ShardWindowSampler"]

KEYS = ("numbers", "positions", "energy", "fock", "overlap", "orbital_energies", "dipole", "polarizability")


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


class ShardFrames(Dataset):
    """Frames ``indices`` of a DFT dataset directory (sorted, so reading in order loads each shard once).

    Args:
        path: the dataset directory.
        indices: frame indices (default all); duplicates are dropped.
        guess: the guess kind added to each frame (:func:`training_frame`).
        orbitals: add the true orbitals to each frame.
        window: the most shards kept loaded (the reader's cache).

    ``self[k]`` is :func:`training_frame` of frame ``self.indices[k]``.
    """

    def __init__(self, path: str | Path, indices: Sequence[int] | None = None, guess: str = "none",
                 orbitals: bool = False, window: int = 2) -> None:
        self.reader = DFTDataset(path, cache_shards=window)
        total = len(self.reader)
        self.indices = sorted({int(i) for i in (range(total) if indices is None else indices)})
        self.guess, self.orbitals, self.window = guess, orbitals, max(1, window)
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
        return training_frame(self.reader[self.indices[position]], self.reader.basis, self.guess, self.orbitals)

    def frames(self, extras: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """All frames in order (one pass over the shards); only the first ``extras`` (default all)
        with the guess and orbitals, the rest without (what :func:`model_statistics` needs)."""
        for position, index in enumerate(self.indices):
            full = extras is None or position < extras
            yield training_frame(self.reader[index], self.reader.basis, self.guess if full else "none",
                                 self.orbitals and full)


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
