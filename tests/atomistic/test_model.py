"""EquivariantPotential: invariance of the energy, equivariance of forces and stress (float64,
<= 1e-10), forces and stress against finite differences, isolated atoms, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equiscale import groups
from equiscale.atomistic import AtomicStructure, collate, structure_graph
from equiscale.testing import OnLastAxis, Positions, assert_equivariant

from .conftest import predict, small_potential


@pytest.fixture(scope="module")
def model():
    return small_potential()


@pytest.fixture(scope="module")
def structure(emt_structures):
    return emt_structures[0]


def _energy_forces_stress(model, cell):
    """fn(positions, cell) -> (energy, forces, stress as 9 numbers) with the neighbour list rebuilt."""

    def fn(positions, cell_matrix):
        s = AtomicStructure(positions.numpy(), [29] * len(positions), cell_matrix.numpy(), pbc=cell is not None)
        out = predict(model, s, stress=cell is not None)
        stress = out.get("stress", torch.zeros(1, 3, 3, dtype=torch.float64)).reshape(1, 9)
        return out["energy"], out["forces"], stress

    return fn


@pytest.mark.parametrize("periodic", [True, False])
def test_energy_invariant_forces_and_stress_equivariant_under_o3_and_translations(model, structure, periodic):
    group = groups.O3()
    vector = group.standard_representation()
    tensor = groups.tensor_product(vector, vector)
    positions = torch.as_tensor(structure.positions if periodic else structure.positions[:12])
    cell = torch.as_tensor(structure.cell)
    fn = _energy_forces_stress(model, cell if periodic else None)
    generator = torch.Generator().manual_seed(7)
    error = assert_equivariant(fn, (positions, cell), group, (Positions(), "1o"), (None, "1o", OnLastAxis(tensor)),
                               translations=True, generator=generator, tolerance=1e-10, n_samples=2)
    assert error <= 1e-10
    assert group.sample(1, generator=generator).shape == (1, 3, 3)


def test_reflection_alone(model, structure):
    mirror = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)).numpy()
    a = predict(model, structure, stress=True)
    s = AtomicStructure(structure.positions @ mirror, structure.numbers, structure.cell @ mirror, True)
    b = predict(model, s, stress=True)
    m = torch.as_tensor(mirror)
    assert abs(a["energy"] - b["energy"]).max() <= 1e-10 * abs(a["energy"]).max()
    assert (b["forces"] - a["forces"] @ m).abs().max() <= 1e-10 * a["forces"].abs().max()
    assert (b["stress"][0] - m @ a["stress"][0] @ m).abs().max() <= 1e-10 * a["stress"].abs().max()


def test_permutations_and_wrapping_into_the_cell(model, structure):
    reference = predict(model, structure, stress=True)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(structure))
    permuted = AtomicStructure(structure.positions[order], structure.numbers[order], structure.cell, True)
    out = predict(model, permuted, stress=True)
    scale = reference["forces"].abs().max()
    assert abs(out["energy"] - reference["energy"]).max() <= 1e-10 * abs(reference["energy"]).max()
    assert (out["forces"] - reference["forces"][order]).abs().max() <= 1e-10 * scale
    assert (out["stress"] - reference["stress"]).abs().max() <= 1e-10 * reference["stress"].abs().max()
    images = rng.integers(-2, 3, size=(len(structure), 3))
    moved = AtomicStructure(structure.positions + images @ structure.cell, structure.numbers, structure.cell, True)
    out = predict(model, moved, stress=True)
    assert abs(out["energy"] - reference["energy"]).max() <= 1e-10 * abs(reference["energy"]).max()
    assert (out["forces"] - reference["forces"]).abs().max() <= 1e-10 * scale


def test_a_supercell_has_proportional_energy_and_the_same_forces(model, structure):
    reference = predict(model, structure, stress=True)
    a, b, c = structure.cell
    positions = np.concatenate([structure.positions, structure.positions + a])
    double = AtomicStructure(positions, np.concatenate([structure.numbers] * 2), np.stack([2 * a, b, c]), True)
    out = predict(model, double, stress=True)
    assert abs(out["energy"] - 2 * reference["energy"]).max() <= 1e-10 * abs(reference["energy"]).max()
    assert (out["forces"] - reference["forces"].repeat(2, 1)).abs().max() <= 1e-10 * reference["forces"].abs().max()
    assert (out["stress"] - reference["stress"]).abs().max() <= 1e-10 * reference["stress"].abs().max()


def test_forces_are_minus_the_finite_difference_gradient(model, structure):
    out = predict(model, structure)
    rng = np.random.default_rng(0)
    h = 1e-5
    for atom, axis in zip(rng.integers(0, len(structure), 4), rng.integers(0, 3, 4)):
        energies = []
        for sign in (1, -1):
            positions = structure.positions.copy()
            positions[atom, axis] += sign * h
            energies.append(float(predict(model, AtomicStructure(positions, structure.numbers, structure.cell, True))["energy"]))
        numeric = -(energies[0] - energies[1]) / (2 * h)
        assert abs(numeric - float(out["forces"][atom, axis])) <= 1e-6 * max(1.0, abs(numeric))
    assert out["forces"].sum(0).abs().max() < 1e-10  # Newton's third law


def test_stress_is_the_strain_derivative_of_the_energy(model, structure):
    out = predict(model, structure, stress=True)
    h = 1e-5
    for a, b in [(0, 0), (1, 2), (2, 0)]:
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[a, b] += sign * h / 2
            strain[b, a] += sign * h / 2
            moved = AtomicStructure(structure.positions @ strain, structure.numbers, structure.cell @ strain, True)
            energies.append(float(predict(model, moved)["energy"]))
        numeric = (energies[0] - energies[1]) / (2 * h) / structure.volume
        assert abs(numeric - float(out["stress"][0, a, b])) <= 1e-6 * max(1e-3, abs(numeric))


def test_isolated_atoms_have_their_reference_energy(model):
    lonely = AtomicStructure([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]], [29, 29])
    out = predict(model, lonely, stress=True)
    assert torch.allclose(out["atomic_energies"], torch.full((2,), -0.3, dtype=torch.float64), atol=1e-12)
    assert out["forces"].abs().max() == 0 and out["stress"].abs().max() == 0
    pair = AtomicStructure([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [20.0, 0.0, 0.0]], [29, 29, 29])
    out = predict(model, pair)
    assert abs(float(out["atomic_energies"][2]) + 0.3) < 1e-12 and abs(float(out["atomic_energies"][0]) + 0.3) > 1e-6


def test_float32_runs_and_leaves_the_default_dtype_alone(structure):
    default = torch.get_default_dtype()
    model32 = small_potential(dtype=torch.float32)
    model64 = small_potential(dtype=torch.float64)
    out32, out64 = predict(model32, structure, stress=True), predict(model64, structure, stress=True)
    assert out32["energy"].dtype == torch.float32 and torch.get_default_dtype() == default
    assert abs(float(out32["energy"]) - float(out64["energy"])) < 1e-4 * abs(float(out64["energy"])) + 1e-4
    assert (out32["forces"].double() - out64["forces"]).abs().max() < 1e-4
    with pytest.raises(ValueError, match="float64 but the model"):
        model32(collate([structure_graph(structure, 4.0)], torch.float64))


def test_unknown_elements_empty_and_nan_inputs_are_refused(model, structure):
    gold = AtomicStructure([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], [29, 79])
    with pytest.raises(ValueError, match="Au not known to this model.*Cu"):
        predict(model, gold)
    batch = collate([structure_graph(structure, 4.0)], torch.float64)
    batch["positions"] = batch["positions"].clone()
    batch["positions"][3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(batch)
    empty = {k: v[:0] if k in ("positions", "numbers", "batch", "forces") else v for k, v in batch.items()}
    with pytest.raises(ValueError, match="empty"):
        model(empty)
    with pytest.raises(ValueError, match="elements"):
        small_potential({"elements": [], "reference_energies": {}, "force_rms": 1.0, "avg_num_neighbors": 1.0})


def test_training_graph_reaches_every_parameter(structure):
    model = small_potential(radial_basis="gaussian").train()
    out = model(collate([structure_graph(structure, 4.0)], torch.float64))
    loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().max() == 0)]
    assert missing == []


@pytest.mark.parametrize("cell", [np.diag([2.6, 2.6, 2.6]), np.array([[3.0, 0, 0], [1.2, 2.8, 0], [0.5, 0.7, 3.1]])])
def test_bond_pairs_join_each_edge_with_its_reverse(cell):
    from equiscale.atomistic.model import EquivariantPotential, bond_pairs

    rng = np.random.default_rng(2)
    structure = AtomicStructure(rng.random((3, 3)) @ cell, [29] * 3, cell, True)  # small cell: atoms see their own images
    batch = collate([structure_graph(structure, 4.0)], torch.float64)
    representative, inverse = bond_pairs(batch["edge_index"], batch["shifts"])
    edges = batch["edge_index"].shape[1]
    assert 2 * representative.shape[0] == edges and inverse.shape == (edges,)
    assert torch.bincount(inverse).tolist() == [2] * representative.shape[0]
    lengths = EquivariantPotential.edge_vectors(batch).norm(dim=-1)
    torch.testing.assert_close(lengths[representative][inverse], lengths, rtol=0, atol=1e-12)
    source, target = batch["edge_index"]
    assert (inverse[representative] == torch.arange(representative.shape[0])).all()
    for bond in range(representative.shape[0]):
        a, b = (inverse == bond).nonzero().flatten().tolist()
        assert source[a] == target[b] and target[a] == source[b]
        torch.testing.assert_close(batch["shifts"][a], -batch["shifts"][b])


def test_isolated_atom_features_are_cached_only_while_the_parameters_stay_the_same():
    model = small_potential()
    lonely = AtomicStructure([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]], [29, 29])
    with torch.no_grad():
        first = model.isolated_features(torch.device("cpu"))
        assert model.isolated_features(torch.device("cpu")) is first  # cached
        model.readout[-1].bias.add_(1.0)  # an in-place change invalidates the cache
        second = model.isolated_features(torch.device("cpu"))
    assert second is not first and torch.allclose(second, first + 1.0)
    # isolated atoms keep their reference energy after the change (the cache followed it)
    out = predict(model, lonely)
    assert torch.allclose(out["atomic_energies"], torch.full((2,), -0.3, dtype=torch.float64), atol=1e-12)
    model.train()  # with gradients to the parameters nothing is cached
    assert model.isolated_features(torch.device("cpu")).requires_grad


@pytest.mark.slow
def test_compiled_inference_gives_the_eager_energy_and_forces(structure):
    model = small_potential()
    batch = collate([structure_graph(structure, model.cutoff)], torch.float64)
    eager = model(batch, forces=True, create_graph=False)
    model.compile_inference()
    try:
        compiled = model(batch, forces=True, create_graph=False)
        trained = model(batch, forces=True, create_graph=True)  # keeps the eager path (double backward)
    finally:
        model.compile_inference(False)
    for key in ("energy", "forces"):
        torch.testing.assert_close(compiled[key], eager[key], rtol=0, atol=1e-10)
        torch.testing.assert_close(trained[key].detach(), eager[key], rtol=0, atol=1e-12)
    assert trained["forces"].requires_grad


def test_isolated_atom_cache_follows_conversions_and_loaded_weights():
    model = small_potential()
    with torch.no_grad():
        before = model.isolated_features(torch.device("cpu"))
        model.float()
        assert model.isolated_features(torch.device("cpu")).dtype == torch.float32
        model.double()
        other = small_potential(seed=1)
        model.load_state_dict(other.state_dict(), assign=True)
        after = model.isolated_features(torch.device("cpu"))
    torch.testing.assert_close(after, other.isolated_features(torch.device("cpu")).detach())
    assert not torch.allclose(after, before)
