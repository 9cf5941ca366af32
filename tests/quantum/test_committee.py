"""Committees of Hamiltonian models: the mean H is exactly equivariant (D H D^T under random rotations
and reflections), the per-block spread is invariant, the block bookkeeping matches an independent count,
the calibration recovers a known scale, and `train hamiltonian --ensemble 2` then `evaluate hamiltonian
DIR` reports a finite calibration scale end to end (HF/STO-3G water)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from equiscale.quantum.basis import molecule_irreps
from equiscale.quantum.model import HamiltonianModel
from equiscale.quantum.uncertainty import (HamiltonianCommittee, block_errors, block_metrics, block_spread,
                                           shell_blocks)

SHELLS = {1: [0], 8: [0, 0, 1]}  # STO-3G
WATER = [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]


def _random_o3(generator, reflect):
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    return -q if (torch.det(q) < 0) != reflect else q


@pytest.fixture(scope="module")
def committee():
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(HamiltonianModel(SHELLS, lmax=2, channels=4, layers=1, pair_channels=2, radial_hidden=8))
    return HamiltonianCommittee(members).double().eval()


def _water(generator, dtype=torch.float64):
    positions = torch.tensor(WATER, dtype=torch.float64) + 0.1 * torch.randn(3, 3, dtype=torch.float64,
                                                                             generator=generator)
    return {"numbers": torch.tensor([8, 1, 1]), "positions": positions.to(dtype),
            "batch": torch.zeros(3, dtype=torch.long)}


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_mean_equivariant_and_block_spread_invariant(committee, dtype, tolerance):
    generator = torch.Generator().manual_seed(7)
    net = committee.to(dtype)
    try:
        batch = _water(generator, dtype)
        blocks = shell_blocks([8, 1, 1], SHELLS)
        with torch.no_grad():
            mean, spread = net.predict(batch)
            h, s = mean["hamiltonian"][0], spread["hamiltonian"][0]
            sigma = block_spread(s, blocks)
            assert sigma.min() > 0  # the members differ: a spread that is identically zero would test nothing
            for reflect in (False, True):
                rotation = _random_o3(generator, reflect)
                moved = dict(batch, positions=batch["positions"] @ rotation.to(dtype).T)
                new_mean, new_spread = net.predict(moved)
                d = molecule_irreps([8, 1, 1], SHELLS).D_from_matrix(rotation).to(dtype)
                expected = d @ h @ d.T
                assert float((new_mean["hamiltonian"][0] - expected).abs().max() / expected.abs().max()) <= tolerance
                moved_sigma = block_spread(new_spread["hamiltonian"][0], blocks)
                assert np.abs(moved_sigma - sigma).max() / sigma.max() <= tolerance
                # the entrywise spread is not invariant (p blocks mix): the block RMS is what is
                assert float((new_spread["hamiltonian"][0] - s).abs().max()) > 100 * tolerance * float(s.max())
                energy = mean["energy"]
                assert float((new_mean["energy"] - energy).abs().max()) <= tolerance * float(energy.abs().max())
    finally:
        committee.double()


def test_committee_mean_is_members_mean(committee):
    batch = _water(torch.Generator().manual_seed(3))
    with torch.no_grad():
        outputs = [m(batch)["hamiltonian"] for m in committee.members]
        mean, spread = committee.predict(batch)
        assert torch.allclose(committee(batch)["hamiltonian"], mean["hamiltonian"])
        assert torch.equal(mean["num_orbitals"], committee.members[0](batch)["num_orbitals"])
    stacked = torch.stack(outputs)
    assert torch.allclose(mean["hamiltonian"], stacked.mean(0), atol=1e-14)
    assert torch.allclose(spread["hamiltonian"], stacked.std(0), atol=1e-14)


def test_shell_blocks_cover_the_upper_triangle():
    numbers = [8, 1, 1]
    blocks = shell_blocks(numbers, SHELLS)
    covered = np.zeros((7, 7), dtype=int)
    for rows, columns, _ in blocks:
        covered[rows, columns] += 1
    # each entry of H is in exactly one block or its transpose; a shell's own square block counts for both
    expected = np.ones((7, 7), dtype=int)
    for rows, columns, _ in blocks:
        if rows == columns:
            expected[rows, columns] = 2
    assert (covered + covered.T == expected).all() and covered.max() == 1
    types = [kind for _, _, kind in blocks]
    assert len(blocks) == 5 * 6 // 2 and types.count("O-O s-s") == 3 and types.count("O-H p-s") == 2
    assert types.count("H-H s-s") == 3
    with pytest.raises(ValueError, match="Z=6"):
        shell_blocks([6], SHELLS)


def test_block_errors_rms_and_calibration_known_scale():
    blocks = shell_blocks([8, 1, 1], SHELLS)
    mean, reference = torch.zeros(7, 7, dtype=torch.float64), torch.zeros(7, 7, dtype=torch.float64)
    mean[2:5, 0] = torch.tensor([3.0, 0.0, 4.0])  # the O p - O 1s block, transposed: not one of the listed blocks
    mean[0, 2:5] = torch.tensor([3.0, 0.0, 4.0])
    errors = block_errors(mean, reference, blocks)
    index = [k for k, (r, c, _) in enumerate(blocks) if r == slice(0, 1) and c == slice(2, 5)]
    assert errors[index[0]] == pytest.approx(np.sqrt(25 / 3)) and np.count_nonzero(errors) == 1
    # synthetic blocks whose errors are 2.5 x their spread in distribution
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.1, 2.0, 20000)
    result = block_metrics(2.5 * sigma * rng.standard_normal(sigma.size), sigma, ["A"] * 10000 + ["B"] * 10000)
    assert result["scale"] == pytest.approx(2.5, rel=0.03)
    assert result["spearman"] > 0.3 and set(result["types"]) == {"A", "B"}
    assert result["types"]["A"]["blocks"] == 10000 and result["nll"] <= result["nll_raw"]


pytest.importorskip("pyscf")  # the end-to-end test labels its tiny dataset with PySCF

from .hamiltonian_data import water_dataset  # noqa: E402

TINY = ("--channels", "4", "--pair-channels", "2", "--radial-hidden", "8", "--layers", "1", "--quiet", "--threads", "1")


def test_train_ensemble_then_evaluate(tmp_path_factory, tmp_path, capsys):
    from equiscale import cli
    from equiscale.quantum.app import APPLICATION

    data = water_dataset(tmp_path_factory.mktemp("dft"))
    out = tmp_path / "committee"
    run = lambda *args: cli.main([str(a) for a in args], applications=[APPLICATION])  # noqa: E731
    assert run("train", "hamiltonian", "--data", data, "--out", out, "--epochs", "2", "--ensemble", "2", *TINY) == 0
    assert (out / "committee.json").is_file() and (out / "member-1" / "best.pt").is_file()
    capsys.readouterr()
    pytest.importorskip("matplotlib")
    figures = tmp_path / "figures"
    assert run("evaluate", "hamiltonian", out, "--data", data, "--scf-frames", "0", "--json", tmp_path / "m.json",
               "--out", figures, "--threads", "1") == 0
    printed = capsys.readouterr().out
    assert "h_mae_uha" in printed and "calibration scale" in printed and "O-H s-s" in printed
    metrics = json.loads((tmp_path / "m.json").read_text())
    uncertainty = metrics["uncertainty"]
    assert uncertainty["members"] == 2 and np.isfinite(uncertainty["scale"]) and uncertainty["scale"] > 0
    assert uncertainty["blocks"] == 8 * 15 and -1 <= uncertainty["spearman"] <= 1
    assert metrics["h_mae_uha"] > 0 and metrics["frames"] == 8
    assert (figures / "calibration.png").stat().st_size > 1000
