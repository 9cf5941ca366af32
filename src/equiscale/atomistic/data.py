"""Graphs of atoms, datasets, batching of structures of different sizes, and splits.

A *graph* is one structure with its neighbour list (numpy, float64). A *batch* is a dict of
tensors holding several graphs side by side (atoms and edges concatenated, edge indices offset):

==============  ===============  ==============================================================
key             shape            meaning
==============  ===============  ==============================================================
num_atoms       (B,) int64       atoms per structure (first key: the Trainer counts batches by it)
positions       (N, 3) float     Angstrom
numbers         (N,) int64       atomic numbers
batch           (N,) int64       structure of each atom
edge_index      (2, E) int64     ``[source, target]`` (see :mod:`.neighbors`)
shifts          (E, 3) float     periodic shifts in cell vectors
cell            (B, 3, 3) float  lattice vectors as rows (zeros without a cell)
pbc             (B, 3) bool
energy          (B,) float       eV, NaN where unknown
forces          (N, 3) float     eV/Angstrom, NaN where unknown
stress          (B, 3, 3) float  eV/Angstrom^3, NaN where unknown
==============  ===============  ==============================================================
"""
from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import numpy as np
import torch

from equiscale.atomistic.neighbors import neighbor_list
from equiscale.atomistic.structures import AtomicStructure

__all__ = ["structure_graph", "collate", "AtomicDataset", "split_indices", "make_loader", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` (or the torch dtype) to a torch dtype; ValueError otherwise."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def structure_graph(structure: AtomicStructure, cutoff: float) -> dict[str, Any]:
    """One structure and its neighbour list within ``cutoff`` (Angstrom), as numpy arrays."""
    edge_index, shifts = neighbor_list(structure.positions, structure.cell, structure.pbc, cutoff)
    n = len(structure)
    return {
        "positions": structure.positions,
        "numbers": structure.numbers,
        "cell": structure.cell,
        "pbc": structure.pbc,
        "edge_index": edge_index,
        "shifts": shifts,
        "energy": np.nan if structure.energy is None else structure.energy,
        "forces": np.full((n, 3), np.nan) if structure.forces is None else structure.forces,
        "stress": np.full((3, 3), np.nan) if structure.stress is None else structure.stress,
    }


def collate(graphs: Sequence[dict[str, Any]], dtype: str | torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Join graphs into one batch (see the module docstring); floats in ``dtype``."""
    if len(graphs) == 0:
        raise ValueError("cannot collate an empty list of structures")
    dtype = resolve_dtype(dtype)
    sizes = np.array([len(g["numbers"]) for g in graphs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    edge_index = np.concatenate([g["edge_index"] + o for g, o in zip(graphs, offsets)], axis=1)

    def floats(array: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float64)).to(dtype)

    return {
        "num_atoms": torch.as_tensor(sizes),
        "positions": floats(np.concatenate([g["positions"] for g in graphs])),
        "numbers": torch.as_tensor(np.concatenate([g["numbers"] for g in graphs])),
        "batch": torch.as_tensor(np.repeat(np.arange(len(graphs)), sizes)),
        "edge_index": torch.as_tensor(edge_index, dtype=torch.int64),
        "shifts": floats(np.concatenate([g["shifts"] for g in graphs])),
        "cell": floats(np.stack([g["cell"] for g in graphs])),
        "pbc": torch.as_tensor(np.stack([g["pbc"] for g in graphs])),
        "energy": floats([g["energy"] for g in graphs]),
        "forces": floats(np.concatenate([g["forces"] for g in graphs])),
        "stress": floats(np.stack([g["stress"] for g in graphs])),
    }


class AtomicDataset(torch.utils.data.Dataset):
    """Structures with neighbour lists computed once, up front.

    ``dataset[k]`` is the graph of structure k (a dict of numpy arrays, see :func:`structure_graph`).
    """

    def __init__(self, structures: Sequence[AtomicStructure], cutoff: float) -> None:
        if len(structures) == 0:
            raise ValueError("a dataset needs at least one structure")
        self.structures = list(structures)
        self.cutoff = float(cutoff)
        self.graphs = [structure_graph(s, self.cutoff) for s in self.structures]

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.graphs[index]

    def subset(self, indices: Sequence[int]) -> "AtomicDataset":
        """A dataset of the structures at ``indices`` (neighbour lists shared, not recomputed)."""
        new = AtomicDataset.__new__(AtomicDataset)
        new.structures = [self.structures[i] for i in indices]
        new.graphs = [self.graphs[i] for i in indices]
        new.cutoff = self.cutoff
        return new


def split_indices(n: int, valid: float | int = 0.1, test: float | int = 0.0, seed: int = 0) -> tuple[list[int], list[int], list[int]]:
    """Random train/validation/test indices of ``n`` items (fractions in [0, 1) or counts).

    The same ``seed`` gives the same split; the training part is never empty.
    """

    def count(part: float | int, name: str) -> int:
        if isinstance(part, float) and 0 <= part < 1:
            return int(round(part * n))
        if isinstance(part, int) and part >= 0:
            return part
        raise ValueError(f"{name} must be a fraction in [0, 1) or a count >= 0, got {part!r}")

    n_valid, n_test = count(valid, "valid"), count(test, "test")
    if n_valid + n_test >= n:
        raise ValueError(f"{n_valid} validation + {n_test} test structures leave none of {n} for training")
    order = np.random.default_rng(seed).permutation(n).tolist()
    return order[n_valid + n_test:], order[:n_valid], order[n_valid:n_valid + n_test]


def make_loader(
    dataset: AtomicDataset,
    batch_size: int,
    shuffle: bool = False,
    dtype: str | torch.dtype = torch.float32,
    seed: int = 0,
    distributed: bool = False,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader of batches; ``distributed=True`` gives each process of a process group its share
    (:func:`equiscale.train.distributed.make_sampler`: a ``DistributedSampler`` with ``seed``,
    reshuffled each epoch by the Trainer's ``set_epoch``). Otherwise, or with one process, shuffling
    draws from torch's global generator (``seed`` unused)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from equiscale.train.distributed import make_sampler

    collate_fn = partial(collate, dtype=resolve_dtype(dtype))
    sampler = make_sampler(dataset, shuffle, seed, drop_last) if distributed else None
    if sampler is not None:
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn, drop_last=drop_last)
    # shuffled from torch's global generator, which the Trainer seeds and restores on resume
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_fn, drop_last=drop_last)
