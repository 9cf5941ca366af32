"""`equiscale check`: kinds read from checkpoint headers, errors measured, broken models caught."""
from __future__ import annotations

import pytest
import torch

from equiscale import check, cli
from equiscale.check import CheckResult, checkpoint_checks, checkpoint_kind, measure_checks

pytestmark = pytest.mark.xdist_group("check_fixtures")  # the trained fixtures are built once, on one worker

TINY_POTENTIAL = dict(lmax=1, channels=4, layers=1, cutoff=3.0, num_radial_basis=4, radial_hidden=8, readout_hidden=4)


@pytest.fixture(scope="module")
def fluid_runs(tmp_path_factory):
    """Tiny fluid runs of one epoch: G-CNN C(4), G-CNN D(4) and a CNN."""
    from equiscale.continuum.data import generate_fluid
    from equiscale.continuum.training import FluidTrainConfig, train_fluid

    folder = tmp_path_factory.mktemp("fluid")
    generate_fluid(folder / "data.npz", trajectories=3, steps=4, resolution=12, progress=False)
    runs = {}
    for name, model, group in (("gcnn", "gcnn", "C4"), ("gcnn_d4", "gcnn", "D4"), ("cnn", "cnn", "C4")):
        config = FluidTrainConfig(model=model, group=group, width=2, blocks=1, kernel_size=3, epochs=1,
                                  validation_trajectories=1)
        train_fluid(folder / "data.npz", folder / name, config, progress=False)
        runs[name] = folder / name
    return runs


@pytest.fixture(scope="module")
def potential(tmp_path_factory):
    """A tiny potential trained for one epoch on four EMT frames: its best.pt."""
    pytest.importorskip("ase")
    from equiscale.atomistic import emt_frames, write_structures
    from equiscale.atomistic.training import TrainSettings, train_potential

    folder = tmp_path_factory.mktemp("potential")
    write_structures(folder / "cu.xyz", emt_frames("Cu", size=1, frames=4, interval=2, seed=3))
    train_potential(TrainSettings(data=str(folder / "cu.xyz"), out=str(folder / "run"), epochs=1, batch_size=2,
                                  progress=False, **TINY_POTENTIAL))
    return folder / "run" / "best.pt"


def _measure(path, **options) -> dict[str, CheckResult]:
    _, checks = checkpoint_checks(path, **options)
    return {r.name: r for r in measure_checks(checks)}


def test_kinds_are_read_from_the_content(fluid_runs, potential):
    assert checkpoint_kind(fluid_runs["gcnn"]) == "fluid"
    assert checkpoint_kind(fluid_runs["cnn"] / "last.pt") == "fluid"
    assert checkpoint_kind(potential) == "potential"
    assert checkpoint_kind(potential.parent) == "potential"


def test_gcnn_is_equivariant_and_cnn_is_not(fluid_runs):
    gcnn = _measure(fluid_runs["gcnn"], rollout=3)
    assert set(gcnn) == {"fluid gcnn C(4): one step", "fluid gcnn C(4): 3-step rollout"}
    for result in gcnn.values():
        assert result.group == "C(4)" and result.float64 < 1e-12 and result.float32 < 1e-5
    cnn = _measure(fluid_runs["cnn"], label="baseline")
    assert cnn["baseline: one step"].float64 > 1e-3  # the check can fail


def test_d4_gcnn_treats_vorticity_as_a_pseudo_scalar(fluid_runs):
    (result,) = _measure(fluid_runs["gcnn_d4"]).values()
    assert result.group == "D(4)" and result.float64 < 1e-12  # a plain scalar action would fail on reflections


def test_potential_is_invariant_and_equivariant(potential):
    results = _measure(potential, label="Cu")
    assert set(results) == {"Cu: energy (invariant)", "Cu: forces (vectors)", "Cu: stress (rank-2 tensor)"}
    for result in results.values():
        assert result.group == "E(3) x S_N" and result.float64 < 1e-10 and result.float32 < 1e-4


class _OrderDependent(torch.nn.Module):
    """A potential whose energy also depends on the distance between atoms 0 and 1: E(3)-invariant,
    but not invariant under renumbering the atoms."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.elements, self.cutoff = model, model.elements, model.cutoff

    def forward(self, batch, forces=True, stress=False, create_graph=None):
        positions = batch["positions"].detach().requires_grad_(True)
        out = self.model({**batch, "positions": positions}, forces=forces, stress=stress, create_graph=create_graph)
        extra = 0.1 * (positions[0] - positions[1]).norm()
        (gradient,) = torch.autograd.grad(extra, positions)
        return {**out, "energy": out["energy"] + extra.detach(), "forces": out["forces"] - gradient}


def test_the_permutation_part_catches_an_order_dependent_model(potential, monkeypatch):
    from equiscale.atomistic import checkpoints

    real = checkpoints.load_potential
    monkeypatch.setattr(checkpoints, "load_potential", lambda *a, **k: _OrderDependent(real(*a, **k)))
    results = _measure(potential)
    assert results["potential: energy (invariant)"].float64 > 1e-4
    assert results["potential: forces (vectors)"].float64 > 1e-4


def test_unusable_checkpoints_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint_kind(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="holds no best.pt or last.pt"):
        checkpoint_kind(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt cannot be read: it is not an equiscale checkpoint .it looks like a text file"):
        checkpoint_kind(tmp_path / "junk.pt")
    torch.save({"model": {}, "extra": {"settings": {"model": "transformer"}}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="old.pt is not an equiscale checkpoint: it has no header"):
        checkpoint_kind(tmp_path / "old.pt")
    from equiscale.train import CheckpointHeader

    torch.save({"model": {}, "header": CheckpointHeader("transformer").as_dict()}, tmp_path / "other.pt")
    assert checkpoint_kind(tmp_path / "other.pt") == "transformer"
    with pytest.raises(ValueError, match="no installed application knows checkpoints of kind 'transformer'"):
        checkpoint_checks(tmp_path / "other.pt")


def test_command_prints_tables_and_honours_the_tolerance(fluid_runs, potential, capsys):
    assert cli.main(["check", str(fluid_runs["gcnn"]), str(potential), "--rollout", "2", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "float64" in out and "fluid gcnn C(4): 2-step rollout" in out and "potential: stress (rank-2 tensor)" in out
    assert cli.main(["check", str(fluid_runs["cnn"]), "--rollout", "0", "--tolerance", "1e-8"]) == 1
    assert "exceeds the tolerance" in capsys.readouterr().err


def test_a_committee_directory_is_checked_member_by_member(fluid_runs, tmp_path, capsys):
    import shutil

    from equiscale.uncertainty.files import write_committee

    committee = tmp_path / "committee"
    for k, run in enumerate(("gcnn", "cnn")):
        shutil.copytree(fluid_runs[run], committee / f"member-{k}")
    write_committee(committee, {"kind": "fluid", "ensemble": 2, "members": ["member-0", "member-1"]})
    assert check.expand_committees([committee, fluid_runs["gcnn"]]) == [
        committee / "member-0", committee / "member-1", fluid_runs["gcnn"]]
    # the CNN member breaks the symmetry, so a tolerance that every G-CNN meets fails the committee
    assert cli.main(["check", str(committee), "--rollout", "0", "--tolerance", "1e-8"]) == 1
    out = capsys.readouterr().out
    assert out.count("float64") == 2 and "gcnn" in out and "cnn" in out


def test_command_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err == f"equiscale check: error: checkpoint {tmp_path / 'nothing'} does not exist\n"


def test_tables():
    results = [CheckResult("a check", "O(3)", 1e-16, 2e-7), CheckResult("another, longer check", "C(4)", 0.05, 0.05)]
    text = check.format_table(results).splitlines()
    assert text[0].split() == ["check", "group", "float64", "float32"] and "1.0e-16" in text[2] and "5.0e-02" in text[3]
    assert check.markdown_table(results).splitlines()[2] == "| a check | O(3) | 1.0e-16 | 2.0e-07 |"
