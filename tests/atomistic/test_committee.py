"""Committees of potentials: members exactly equivariant, the spread invariant (energies) and rotating
with the atoms (force deviations), the calculator's extra results, and the committee commands end to end."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from equiscale.atomistic import AtomicStructure, Calculator, collate, structure_graph
from equiscale.atomistic.evaluate import committee_forward
from equiscale.uncertainty import Committee

from .conftest import TINY, small_potential


def random_o3(generator: torch.Generator, reflect: bool) -> np.ndarray:
    """A random rotation (Haar, by QR), times -1 for a reflection."""
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return (-q if reflect else q).numpy()


def transformed(structure: AtomicStructure, rotation: np.ndarray) -> AtomicStructure:
    return AtomicStructure(structure.positions @ rotation.T, structure.numbers, structure.cell @ rotation.T, structure.pbc)


@pytest.fixture(scope="module")
def committee64():
    return Committee([small_potential(seed=k) for k in range(3)]).eval()


def _outputs(committee: Committee, structure: AtomicStructure, dtype: torch.dtype):
    batch = collate([structure_graph(structure, committee.cutoff)], dtype)
    members = [{k: v.detach() for k, v in m(batch, create_graph=False).items()} for m in committee.members]
    return members, committee_forward(committee, batch)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-11), (torch.float32, 5e-4)])
def test_members_equivariant_energy_spread_invariant_force_spread_rotates(committee64, emt_structures, dtype, tolerance):
    committee = Committee([copy.deepcopy(m).to(dtype) for m in committee64.members])
    generator = torch.Generator().manual_seed(3)
    structure = emt_structures[0]
    members, out = _outputs(committee, structure, dtype)
    scale = float(out["forces"].abs().max())
    assert float(out["forces_std"].max()) > 1e-3 * scale  # the members disagree: a spread to test
    for trial in range(4):
        rotation = torch.from_numpy(random_o3(generator, reflect=trial % 2 == 1)).to(dtype)
        moved_members, moved = _outputs(committee, transformed(structure, rotation.double().numpy()), dtype)
        for before, after in zip(members, moved_members):  # each member: invariant energy, equivariant forces
            assert abs(float(after["energy"] - before["energy"])) <= tolerance * abs(float(before["energy"]))
            assert float((after["forces"] - before["forces"] @ rotation.T).abs().max()) <= tolerance * scale
        assert abs(float(moved["energy_std"] - out["energy_std"])) <= tolerance * abs(float(out["energy"]))
        assert float((moved["forces_std"] - out["forces_std"]).abs().max()) <= tolerance * scale
        deviation = torch.stack([m["forces"] - out["forces"] for m in members])
        moved_deviation = torch.stack([m["forces"] - moved["forces"] for m in moved_members])
        assert float((moved_deviation - deviation @ rotation.T).abs().max()) <= tolerance * scale


def test_committee_forward_matches_an_independent_numpy_spread(committee64, emt_structures):
    members, out = _outputs(committee64, emt_structures[1], torch.float64)
    energies = np.array([float(m["energy"]) for m in members])
    forces = np.stack([m["forces"].numpy() for m in members])
    assert abs(float(out["energy_std"]) - energies.std(ddof=1)) < 1e-12
    np.testing.assert_allclose(out["forces_std"].numpy(), np.sqrt(forces.var(axis=0, ddof=1).mean(axis=1)), rtol=1e-12)
    np.testing.assert_allclose(out["forces"].numpy(), forces.mean(axis=0), rtol=1e-12, atol=1e-14)


def test_calculator_returns_the_spreads_for_a_committee_only(committee64, emt_structures):
    atoms = emt_structures[2].to_atoms()
    members, out = _outputs(committee64, emt_structures[2], torch.float64)
    atoms.calc = Calculator(committee64, dtype="float64", uncertainty_scale=2.0)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    results = atoms.calc.results
    assert abs(energy - float(out["energy"])) < 1e-10 and np.abs(forces - out["forces"].numpy()).max() < 1e-10
    assert abs(results["energy_std"] - 2 * float(out["energy_std"])) < 1e-12
    assert results["forces_std"].shape == (len(atoms),)
    np.testing.assert_allclose(results["forces_std"], 2 * out["forces_std"].numpy(), rtol=1e-12)
    assert abs(atoms.calc.get_property("energy_std", atoms) - results["energy_std"]) == 0
    single = emt_structures[2].to_atoms()
    single.calc = Calculator(committee64.members[0], dtype="float64")
    single.get_potential_energy()
    assert "energy_std" not in single.calc.results and "forces_std" not in single.calc.results


def test_train_and_evaluate_a_committee_from_the_command_line(tmp_path, emt_file, capsys):
    from equiscale import cli

    out = tmp_path / "committee"
    options = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert cli.main(["train", "potential", "--data", str(emt_file), "--out", str(out), "--ensemble", "2", "--epochs", "1",
                     "--threads", "1", "--quiet", "--no-progress", *options]) == 0
    assert json.loads((out / "committee.json").read_text())["seeds"] == [0, 1]
    from ase.io import read

    atoms = read(emt_file, 0)
    atoms.calc = Calculator(out)
    atoms.get_forces()
    assert atoms.calc.results["forces_std"].shape == (len(atoms),) and atoms.calc.results["energy_std"] > 0
    report = tmp_path / "report.json"
    capsys.readouterr()
    assert cli.main(["evaluate", "potential", str(out), "--data", str(emt_file), "--json", str(report),
                     "--shifts", "strain", "--shift-frames", "2"]) == 0
    text = capsys.readouterr().out
    assert "committee of 2 potentials" in text and "strain +3%" in text and "| in distribution |" in text
    rows = json.loads(report.read_text())["rows"]
    assert [r["name"] for r in rows] == ["in distribution", "strain +3%", "strain -3%"]
    assert (out / "calibration.png").is_file() and (out / "shifts.png").is_file()
    assert cli.main(["evaluate", "potential", str(out / "member-0"), "--data", str(emt_file), "--shifts", "hot"]) == 2
    assert "need a committee" in capsys.readouterr().err
