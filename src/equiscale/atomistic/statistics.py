"""Dataset statistics that set a potential's scales before training.

* per-element reference energies ``e_Z`` by least squares: ``E_s ~ sum_Z n_{s,Z} e_Z`` (eV);
* the force RMS over all components (eV/Angstrom), the scale of the atomic energies;
* the average number of neighbours inside the cutoff, which normalises message passing.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from equiscale.atomistic.structures import AtomicStructure

__all__ = ["reference_energies", "force_rms", "average_num_neighbors", "dataset_statistics"]


def reference_energies(structures: Sequence[AtomicStructure], elements: Sequence[int] | None = None) -> dict[int, float]:
    """Least-squares per-element energies (eV) from the structures that have an energy.

    With a composition that does not pin down every element (e.g. one fixed stoichiometry), the
    minimum-norm solution is returned. ``elements`` defaults to every element present.
    """
    labelled = [s for s in structures if s.energy is not None]
    if not labelled:
        raise ValueError("no structure has an energy: cannot fit reference energies")
    elements = sorted({int(z) for s in structures for z in s.numbers}) if elements is None else [int(z) for z in elements]
    column = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(labelled), len(elements)))
    for row, s in enumerate(labelled):
        for z, n in zip(*np.unique(s.numbers, return_counts=True)):
            if int(z) not in column:
                raise ValueError(f"element Z={int(z)} is in the data but not in elements {elements}")
            counts[row, column[int(z)]] = n
    energies = np.array([s.energy for s in labelled])
    solution = np.linalg.lstsq(counts, energies, rcond=None)[0]
    return {z: float(solution[k]) for z, k in column.items()}


def force_rms(structures: Sequence[AtomicStructure]) -> float:
    """Root mean square of all force components (eV/Angstrom); 1.0 if no structure has forces."""
    forces = [s.forces for s in structures if s.forces is not None]
    if not forces:
        return 1.0
    value = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    return value if value > 0 else 1.0


def average_num_neighbors(edge_counts: Sequence[int], atom_counts: Sequence[int]) -> float:
    """Total edges over total atoms (at least 1)."""
    total_atoms = float(np.sum(atom_counts))
    if total_atoms <= 0:
        raise ValueError("no atoms to average over")
    return max(float(np.sum(edge_counts)) / total_atoms, 1.0)


def dataset_statistics(dataset: "object") -> dict[str, object]:
    """All three statistics of an :class:`~equiscale.atomistic.data.AtomicDataset`, as a dict
    ``{"elements", "reference_energies", "force_rms", "avg_num_neighbors"}``."""
    structures = dataset.structures  # type: ignore[attr-defined]
    elements = sorted({int(z) for s in structures for z in s.numbers})
    references = reference_energies(structures, elements) if any(s.energy is not None for s in structures) else {z: 0.0 for z in elements}
    graphs = dataset.graphs  # type: ignore[attr-defined]
    return {
        "elements": elements,
        "reference_energies": references,
        "force_rms": force_rms(structures),
        "avg_num_neighbors": average_num_neighbors([g["edge_index"].shape[1] for g in graphs], [len(g["numbers"]) for g in graphs]),
    }
