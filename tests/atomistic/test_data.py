"""Structures, neighbour lists, batching, splits and statistics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equiscale.atomistic import (AtomicDataset, AtomicStructure, collate, dataset_statistics, force_rms, neighbor_list,
                                 read_structures, reference_energies, split_indices, structure_graph, write_structures)


def _pairs(edge_index, shifts):
    return sorted((int(j), int(i), *map(int, s)) for (j, i), s in zip(edge_index.T, np.rint(shifts)))


@pytest.mark.parametrize("pbc", [True, False, (True, False, True)])
def test_neighbor_list_matches_ase_in_a_small_triclinic_cell(pbc):
    from ase.neighborlist import neighbor_list as ase_neighbor_list
    from ase import Atoms

    rng = np.random.default_rng(0)
    cell = np.array([[3.0, 0.0, 0.0], [1.2, 2.8, 0.0], [0.5, 0.7, 3.1]])  # smaller than twice the cutoff
    positions = rng.random((5, 3)) @ cell
    atoms = Atoms("Cu5", positions=positions, cell=cell, pbc=pbc)
    i, j, shifts = ase_neighbor_list("ijS", atoms, 3.5)
    edge_index, ours = neighbor_list(positions, cell, pbc, 3.5)
    assert edge_index.dtype == np.int64 and edge_index.shape[0] == 2
    assert _pairs(np.stack([j, i]), shifts) == _pairs(edge_index, ours)
    vectors = positions[edge_index[0]] - positions[edge_index[1]] + ours @ cell
    assert np.linalg.norm(vectors, axis=1).max() < 3.5 and np.linalg.norm(vectors, axis=1).min() > 0


def test_extxyz_round_trip_keeps_labels(tmp_path, emt_structures):
    path = tmp_path / "frames.xyz"
    write_structures(path, emt_structures[:3])
    back = read_structures(path)
    assert len(back) == 3
    for a, b in zip(emt_structures, back):
        assert np.allclose(a.positions, b.positions, atol=1e-7) and np.allclose(a.cell, b.cell)
        assert b.pbc.all() and abs(a.energy - b.energy) < 1e-7
        assert np.allclose(a.forces, b.forces, atol=1e-7) and np.allclose(a.stress, b.stress, atol=1e-9)


def test_reads_other_ase_formats(tmp_path, emt_structures):
    from ase.io import write

    path = tmp_path / "frames.traj"
    write(path, [s.to_atoms() for s in emt_structures[:2]])
    back = read_structures(path)
    assert len(back) == 2 and abs(back[1].energy - emt_structures[1].energy) < 1e-9
    assert back[0].stress.shape == (3, 3)


def test_collate_offsets_edges_of_structures_of_different_sizes(emt_structures):
    molecule = AtomicStructure([[0, 0, 0], [0.0, 0, 1.1], [1.0, 0.2, 0.0]], [29, 29, 29], energy=-1.0)
    graphs = [structure_graph(emt_structures[0], 4.0), structure_graph(molecule, 4.0)]
    batch = collate(graphs, torch.float64)
    assert batch["num_atoms"].tolist() == [32, 3]
    assert batch["positions"].shape == (35, 3) and batch["positions"].dtype == torch.float64
    source, target = batch["edge_index"]
    assert (batch["batch"][source] == batch["batch"][target]).all()
    assert (source[batch["batch"][target] == 1] >= 32).all()
    assert batch["edge_index"].shape[1] == graphs[0]["edge_index"].shape[1] + 6
    assert torch.isnan(batch["forces"][32:]).all() and torch.isnan(batch["stress"][1]).all()
    assert collate(graphs)["positions"].dtype == torch.float32


def test_splits_are_disjoint_reproducible_and_checked():
    train, valid, test = split_indices(20, valid=0.2, test=3, seed=4)
    assert len(valid) == 4 and len(test) == 3 and len(train) == 13
    assert sorted(train + valid + test) == list(range(20))
    assert split_indices(20, valid=0.2, test=3, seed=4) == (train, valid, test)
    assert split_indices(20, valid=0.2, test=3, seed=5) != (train, valid, test)
    with pytest.raises(ValueError, match="leave none"):
        split_indices(5, valid=3, test=2)


def test_reference_energies_by_least_squares():
    rng = np.random.default_rng(1)
    truth = {1: -13.6, 8: -432.1}
    structures = []
    for _ in range(6):
        numbers = rng.choice([1, 8], size=rng.integers(2, 7))
        numbers[:2] = [1, 8]
        energy = sum(truth[int(z)] for z in numbers)
        structures.append(AtomicStructure(rng.random((len(numbers), 3)) * 5, numbers, energy=energy))
    fitted = reference_energies(structures)
    assert fitted.keys() == truth.keys()
    assert all(abs(fitted[z] - truth[z]) < 1e-9 for z in truth)


def test_dataset_statistics(emt_dataset):
    stats = dataset_statistics(emt_dataset)
    assert stats["elements"] == [29]
    mean = np.mean([s.energy / len(s) for s in emt_dataset.structures])
    assert abs(stats["reference_energies"][29] - mean) < 1e-9
    assert abs(stats["force_rms"] - force_rms(emt_dataset.structures)) < 1e-12 and 0.1 < stats["force_rms"] < 3
    edges = sum(g["edge_index"].shape[1] for g in emt_dataset.graphs)
    assert abs(stats["avg_num_neighbors"] - edges / (32 * len(emt_dataset))) < 1e-12
    assert 12 <= stats["avg_num_neighbors"] <= 24  # fcc: 12 first and 6 second neighbours within 4 A


def test_emt_frames_carry_energy_forces_and_stress(emt_structures):
    s = emt_structures[0]
    assert len(s) == 32 and s.pbc.all() and s.volume > 0
    assert s.forces.shape == (32, 3) and s.stress.shape == (3, 3) and np.isfinite(s.energy)
    assert np.allclose(s.stress, s.stress.T)
    assert abs(s.forces.sum(0)).max() < 1e-8  # EMT forces sum to zero
    with pytest.raises(ValueError, match="EMT has parameters"):
        from equiscale.atomistic import emt_frames

        emt_frames("Fe", size=1, frames=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(positions=np.zeros((0, 3)), numbers=[]), "empty structure"),
        (dict(positions=[[0, 0, np.nan]], numbers=[29]), "NaN or infinite"),
        (dict(positions=[[0, 0, np.inf]], numbers=[29]), "NaN or infinite"),
        (dict(positions=[[0, 0, 0]], numbers=[29], pbc=True), "needs a cell"),
        (dict(positions=[[0, 0, 0]], numbers=[29], pbc=(True, False, False), cell=np.diag([3.0, 0, 0])), "needs a cell"),
        (dict(positions=[[0, 0, 0]], numbers=[0]), "atomic numbers"),
        (dict(positions=[[0, 0, 0]], numbers=[29], forces=[[1.0, 2.0]]), "forces"),
    ],
)
def test_bad_structures_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AtomicStructure(**kwargs)


def test_bad_files_are_refused(tmp_path, emt_structures):
    with pytest.raises(FileNotFoundError):
        read_structures(tmp_path / "missing.xyz")
    path = tmp_path / "frames.xyz"
    write_structures(path, emt_structures[:2])
    lines = path.read_text().splitlines()
    truncated = tmp_path / "truncated.xyz"
    truncated.write_text("\n".join(lines[: len(lines) - 5]) + "\n")
    with pytest.raises(ValueError, match="truncated.xyz"):
        read_structures(truncated)
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("this is not\nan xyz file\n")
    with pytest.raises(ValueError, match="garbage.xyz"):
        read_structures(garbage)
    with pytest.raises(ValueError, match="at least one"):
        AtomicDataset([], 4.0)
