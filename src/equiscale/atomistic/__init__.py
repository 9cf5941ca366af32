"""The atomistic scale: structures and datasets (ASE), neighbour lists (vesin), the equivariant
interatomic potential, its training, evaluation and ASE calculator, and EMT reference data.

Units are ASE's: eV, Angstrom, eV/Angstrom, eV/Angstrom^3 (stress, ASE's sign convention).
"""
from typing import Any

from equiscale.atomistic.data import AtomicDataset, collate, make_loader, split_indices, structure_graph
from equiscale.atomistic.emt import emt_frames, write_emt_dataset
from equiscale.atomistic.neighbors import neighbor_list
from equiscale.atomistic.statistics import average_num_neighbors, dataset_statistics, force_rms, reference_energies
from equiscale.atomistic.structures import AtomicStructure, read_structures, write_structures

__all__ = [
    "AtomicStructure",
    "read_structures",
    "write_structures",
    "neighbor_list",
    "structure_graph",
    "collate",
    "AtomicDataset",
    "split_indices",
    "make_loader",
    "reference_energies",
    "force_rms",
    "average_num_neighbors",
    "dataset_statistics",
    "emt_frames",
    "write_emt_dataset",
    "EquivariantPotential",
    "Calculator",
    "load_potential",
    "TrainSettings",
    "train_potential",
    "evaluate_potential",
]

_LAZY = {
    "EquivariantPotential": "equiscale.atomistic.model",
    "Calculator": "equiscale.atomistic.calculator",
    "load_potential": "equiscale.atomistic.checkpoints",
    "TrainSettings": "equiscale.atomistic.training",
    "train_potential": "equiscale.atomistic.training",
    "evaluate_potential": "equiscale.atomistic.evaluate",
}


def __getattr__(name: str) -> Any:
    """The model, calculator and training entry points, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'equiscale.atomistic' has no attribute {name!r}")
