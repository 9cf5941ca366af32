"""HamiltonianModel: H exactly symmetric; H, dipole, polarizability and energy exactly equivariant
under rotations and reflections (float64 <= 1e-10, float32 <= 1e-5), invariant to translations and to
permutations of identical atoms (rows and columns permuted); batching; bad input."""
from __future__ import annotations

import copy

import pytest
import torch

from equiscale import o3
from equiscale.quantum.basis import atom_irreps as shell_irreps
from equiscale.quantum.model import HamiltonianModel

SHELLS = {1: [0, 0, 1], 8: [0, 0, 0, 1, 1, 2]}  # def2-SVP: s, p and d blocks
WATER = [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HamiltonianModel(SHELLS, lmax=2, channels=4, layers=2, pair_channels=2, radial_hidden=8).double()


def _batch(dtype, generator, molecules=2):
    """Two distorted water dimers-worth of atoms: (H2O) and (H2O)2, so identical atoms abound."""
    numbers = torch.tensor([8, 1, 1] + [8, 1, 1, 8, 1, 1][: 6 * (molecules - 1)])
    base = torch.tensor(WATER + [[x, y, z + 2.9] for x, y, z in WATER][: 3 * (molecules - 1)], dtype=torch.float64)
    if molecules > 1:
        base = torch.cat([base[:3], base])
        base[3:6] += torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)
    positions = base + 0.1 * torch.randn(base.shape, dtype=torch.float64, generator=generator)
    batch = torch.tensor([0, 0, 0] + [1] * (len(numbers) - 3))
    return {"numbers": numbers, "positions": positions.to(dtype), "batch": batch}


def _random_o3(generator):
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    return q * torch.sign(torch.diagonal(r))


def _ao_irreps(numbers):
    irreps = o3.Irreps("")
    for z in numbers.tolist():
        irreps = irreps + shell_irreps(SHELLS[z])
    return irreps


def _relative(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equivariant_under_rotations_and_reflections(model, dtype):
    generator = torch.Generator().manual_seed(1)
    net = copy.deepcopy(model).to(dtype)  # a float32 round trip would round the float64 constants
    batch = _batch(dtype, generator)
    with torch.no_grad():
        out = net(batch)
        for reflect in (False, True):
            rotation = _random_o3(generator)
            if (torch.det(rotation) < 0) != reflect:
                rotation = -rotation
            moved = dict(batch, positions=batch["positions"] @ rotation.to(dtype).T)
            new = net(moved)
            for b in range(2):
                atoms = batch["numbers"][batch["batch"] == b]
                d = _ao_irreps(atoms).D_from_matrix(rotation).to(dtype)
                n = d.shape[0]
                h = out["hamiltonian"][b, :n, :n]
                assert _relative(new["hamiltonian"][b, :n, :n], d @ h @ d.T) <= TOLERANCE[dtype]
            r = rotation.to(dtype)
            assert _relative(new["dipole"], out["dipole"] @ r.T) <= TOLERANCE[dtype]
            assert _relative(new["polarizability"], r @ out["polarizability"] @ r.T) <= TOLERANCE[dtype]
            assert _relative(new["energy"], out["energy"]) <= TOLERANCE[dtype]


def test_hamiltonian_symmetric_and_padded(model):
    out = model(_batch(torch.float64, torch.Generator().manual_seed(2)))
    h, n = out["hamiltonian"], out["num_orbitals"]
    assert n.tolist() == [24, 48] and h.shape == (2, 48, 48)
    assert torch.equal(h, h.transpose(-1, -2))
    assert torch.count_nonzero(h[0, 24:]) == 0 and torch.count_nonzero(h[0, :, 24:]) == 0


def test_translation_and_permutation_of_identical_atoms(model):
    generator = torch.Generator().manual_seed(3)
    batch = _batch(torch.float64, generator, molecules=2)
    one = {k: v[3:] for k, v in batch.items()}
    one["batch"] = torch.zeros(6, dtype=torch.long)
    with torch.no_grad():
        out = model(one)
        shifted = model(dict(one, positions=one["positions"] + torch.tensor([3.0, -1.0, 7.5], dtype=torch.float64)))
        for key in ("hamiltonian", "dipole", "polarizability", "energy"):
            assert _relative(shifted[key], out[key]) <= 1e-10
        order = torch.tensor([3, 5, 4, 0, 2, 1])  # swap the two waters and the hydrogens of each
        permuted = model({"numbers": one["numbers"][order], "positions": one["positions"][order], "batch": one["batch"]})
    sizes = [shell_irreps(SHELLS[z]).dim for z in one["numbers"].tolist()]
    starts = torch.tensor([0] + sizes).cumsum(0)
    ao = torch.cat([torch.arange(starts[a], starts[a] + sizes[a]) for a in order.tolist()])
    assert _relative(permuted["hamiltonian"][0], out["hamiltonian"][0][ao][:, ao]) <= 1e-10
    for key in ("dipole", "polarizability", "energy"):
        assert _relative(permuted[key], out[key]) <= 1e-10


def test_batch_equals_molecules_alone(model):
    batch = _batch(torch.float64, torch.Generator().manual_seed(4))
    together = model(batch)
    alone = model({"numbers": batch["numbers"][:3], "positions": batch["positions"][:3]})
    assert torch.allclose(together["hamiltonian"][0, :24, :24], alone["hamiltonian"][0], atol=1e-12)
    assert torch.allclose(together["energy"][0], alone["energy"][0], atol=1e-12)


def test_rebuild_from_config_and_gradients(model):
    rebuilt = HamiltonianModel(**model.config).double()
    rebuilt.load_state_dict(model.state_dict())
    batch = _batch(torch.float64, torch.Generator().manual_seed(5))
    assert torch.allclose(rebuilt(batch)["hamiltonian"], model(batch)["hamiltonian"], atol=1e-12)
    out = rebuilt(batch)
    (out["hamiltonian"].square().sum() + out["energy"].sum() + out["dipole"].sum() + out["polarizability"].sum()).backward()
    assert all(p.grad is not None for p in rebuilt.parameters() if p.requires_grad)


def test_bad_input(model):
    batch = _batch(torch.float64, torch.Generator().manual_seed(6), molecules=1)
    with pytest.raises(ValueError, match=r"Z=\[6\] not known"):
        model(dict(batch, numbers=torch.tensor([6, 1, 1])))
    nan = batch["positions"].clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(dict(batch, positions=nan))
    with pytest.raises(ValueError, match="float32"):
        model(dict(batch, positions=batch["positions"].float()))
    with pytest.raises(ValueError, match="shells"):
        HamiltonianModel({8: []})


def test_plan_holds_the_index_work_and_core_of_plan_is_forward(model):
    """forward = core(positions, plan(batch)) bit for bit; the plan is integer tensors grouped per element (pair)."""
    batch = _batch(torch.float64, torch.Generator().manual_seed(7))
    plan = model.plan(batch)
    assert sorted(plan["atoms"]) == ["1", "8"] and list(plan["pairs"]) == ["1-1", "1-8", "8-8"]
    flat = [plan[k] for k in ("species", "molecule", "offset", "num_orbitals", "orbitals", "edges")]
    assert all(t.dtype == torch.long for t in flat + list(plan["atoms"].values()) + list(plan["pairs"].values()))
    assert plan["orbitals"].shape[0] == int(plan["num_orbitals"].max()) == 48
    for key, (rows, cols) in plan["pairs"].items():
        za, zb = map(int, key.split("-"))
        assert (batch["numbers"][rows] == za).all() and (batch["numbers"][cols] == zb).all()
        assert (batch["batch"][rows] == batch["batch"][cols]).all()
    pairs_within = sum(int(((batch["batch"] == b)).sum()) * (int((batch["batch"] == b).sum()) - 1) // 2 for b in (0, 1))
    assert sum(g.shape[1] for g in plan["pairs"].values()) == pairs_within
    expected, got = model(batch), model.core(batch["positions"], plan)
    assert expected.keys() == got.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
    hydrogen = {"numbers": torch.tensor([1, 1]), "positions": torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]],
                                                                            dtype=torch.float64)}
    plan = model.plan(hydrogen)  # no oxygen: its groups are absent from the plan
    assert list(plan["atoms"]) == ["1"] and list(plan["pairs"]) == ["1-1"]
    assert torch.equal(model.core(hydrogen["positions"], plan)["hamiltonian"], model(hydrogen)["hamiltonian"])


@pytest.mark.parametrize("backend", ["eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_core_compiles_without_graph_break(model, backend):
    """The core under torch.compile(fullgraph=True) equals eager."""
    batch = _batch(torch.float64, torch.Generator().manual_seed(8))
    plan = model.plan(batch)
    expected = model.core(batch["positions"], plan)
    torch._dynamo.reset()
    try:
        got = torch.compile(model.core, fullgraph=True, backend=backend, dynamic=False)(batch["positions"], plan)
    finally:
        torch._dynamo.reset()
    assert all(torch.allclose(got[k], expected[k], atol=1e-12) for k in expected)
