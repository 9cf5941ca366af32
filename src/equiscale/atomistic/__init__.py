"""The atomistic scale: structures and datasets (ASE), neighbour lists (vesin), the equivariant
interatomic potential, its training, evaluation and ASE calculator, and EMT reference data.

Units are ASE's: eV, Angstrom, eV/Angstrom, eV/Angstrom^3 (stress, ASE's sign convention). Every
name below is imported on first use, so that the command line's application declaration
(:mod:`equiscale.atomistic.app`) imports no torch.
"""
from equiscale._lazy import lazy_attributes

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
    "AtomicStructure": "equiscale.atomistic.structures",
    "read_structures": "equiscale.atomistic.structures",
    "write_structures": "equiscale.atomistic.structures",
    "neighbor_list": "equiscale.atomistic.neighbors",
    "structure_graph": "equiscale.atomistic.data",
    "collate": "equiscale.atomistic.data",
    "AtomicDataset": "equiscale.atomistic.data",
    "split_indices": "equiscale.atomistic.data",
    "make_loader": "equiscale.atomistic.data",
    "reference_energies": "equiscale.atomistic.statistics",
    "force_rms": "equiscale.atomistic.statistics",
    "average_num_neighbors": "equiscale.atomistic.statistics",
    "dataset_statistics": "equiscale.atomistic.statistics",
    "emt_frames": "equiscale.atomistic.emt",
    "write_emt_dataset": "equiscale.atomistic.emt",
    "EquivariantPotential": "equiscale.atomistic.model",
    "Calculator": "equiscale.atomistic.calculator",
    "load_potential": "equiscale.atomistic.checkpoints",
    "TrainSettings": "equiscale.atomistic.settings",
    "train_potential": "equiscale.atomistic.training",
    "evaluate_potential": "equiscale.atomistic.evaluate",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
