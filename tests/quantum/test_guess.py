"""Learning F minus a cheap guess, and the occupied-subspace loss.

* the guesses are PySCF's one-electron matrices in our basis: ``core`` is ``mf.get_hcore()``, and both
  rotate as ``G(R x) = D G(x) D^T`` (float64, 1e-10: analytic integrals, no SCF noise);
* ``sap`` is far closer to the converged F than ``core`` (what makes it worth learning the difference to);
* a model with a guess outputs guess + network and names the missing guess in one line;
* ``occupied_error``: zero for the truth; ``H = F + d S`` (every orbital energy shifted by ``d``, the
  orbitals unchanged) gives ``d`` on the occupied diagonal and nothing else;
* a short run with ``guess="sap"`` and the occupied loss trains, evaluates and passes its symmetry checks.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pyscf")

from equiscale.quantum.guess import frame_guess, guess_matrix  # noqa: E402
from equiscale.quantum.labels import make_molecule  # noqa: E402
from equiscale.quantum.settings import TrainHamiltonian  # noqa: E402
from equiscale.quantum.training import collate, load_frames, occupied_error, train_hamiltonian  # noqa: E402

from .hamiltonian_data import water_dataset  # noqa: E402

TINY = dict(channels=4, pair_channels=2, radial_hidden=8, quiet=True, threads=1)
WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return water_dataset(tmp_path_factory.mktemp("dft"))


@pytest.mark.parametrize("kind", ["core", "sap"])
def test_guess_rotates_with_the_molecule(kind):
    from scipy.spatial.transform import Rotation

    from equiscale.quantum.basis import molecule_irreps, pyscf_to_irreps

    numbers = [8, 1, 1]
    positions = WATER + np.random.default_rng(0).normal(scale=0.05, size=WATER.shape)
    rotation = Rotation.random(random_state=3).as_matrix()
    for r in (rotation, -rotation):  # proper and improper
        mol = make_molecule(numbers, positions, "def2-svp")
        irreps, _ = pyscf_to_irreps(mol)
        d = irreps.D_from_matrix(torch.as_tensor(r)).numpy()
        before = guess_matrix(mol, kind)
        after = frame_guess(numbers, positions @ r.T, "def2-svp", kind)
        assert np.abs(after - d @ before @ d.T).max() < 1e-10
        assert str(irreps) == str(molecule_irreps(numbers, {1: [0, 0, 1], 8: [0, 0, 0, 1, 1, 2]}))
    from pyscf import scf

    from equiscale.quantum.basis import to_irreps

    if kind == "core":
        P = pyscf_to_irreps(mol)[1]
        assert np.abs(guess_matrix(mol, "core") - to_irreps(scf.RHF(mol).get_hcore(), P)).max() < 1e-12


def test_sap_is_much_closer_to_f_than_the_core_hamiltonian(data):
    frames, _ = load_frames(data, range(2))
    for frame in frames:
        core = frame_guess(frame["numbers"], frame["positions"], "sto-3g", "core")
        sap = frame_guess(frame["numbers"], frame["positions"], "sto-3g", "sap")
        assert np.abs(frame["fock"] - sap).mean() < 0.2 * np.abs(frame["fock"] - core).mean()


def test_a_model_with_a_guess_adds_it_and_needs_it():
    from equiscale.quantum.model import HamiltonianModel

    shells = {1: [0], 8: [0, 0, 1]}
    torch.manual_seed(0)
    plain = HamiltonianModel(shells, lmax=1, channels=2, layers=1, pair_channels=1, radial_hidden=4).double()
    guessed = HamiltonianModel(shells, lmax=1, channels=2, layers=1, pair_channels=1, radial_hidden=4, guess="sap").double()
    guessed.load_state_dict(plain.state_dict())
    batch = {"numbers": torch.tensor([8, 1, 1]), "positions": torch.as_tensor(WATER)}
    guess = torch.randn(1, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(guessed({**batch, "guess": guess})["hamiltonian"], plain(batch)["hamiltonian"] + guess)
        with pytest.raises(ValueError, match="needs 'guess'"):
            guessed(batch)


def test_occupied_error_is_zero_for_the_truth_and_sees_a_uniform_shift(data):
    frames, _ = load_frames(data, range(2), orbitals=True)
    batch = collate(frames, torch.float64)
    assert float(occupied_error(batch["fock"], batch).abs().max()) < 1e-12
    shift = 1e-3
    errors = occupied_error(batch["fock"] + shift * batch["overlap"], batch)
    k, n = 5, 7  # water in STO-3G: 5 occupied of 7 orbitals, per molecule
    rows = errors.reshape(2, k, n)
    assert torch.allclose(rows[:, :, :k], shift * torch.eye(k, dtype=torch.float64).expand(2, k, k), atol=1e-12)
    assert float(rows[:, :, k:].abs().max()) < 1e-12


def test_training_on_the_sap_difference_with_the_occupied_loss(data, tmp_path):
    from equiscale.check import CheckOptions
    from equiscale.quantum.checks import hamiltonian_checks
    from equiscale.quantum.evaluate import evaluate_hamiltonian
    from equiscale.train import load_checkpoint

    out = tmp_path / "run"
    summary = train_hamiltonian(TrainHamiltonian(data=str(data), out=str(out), epochs=3, guess="sap",
                                                 occupied_weight=1.0, **TINY))
    assert "occupied_mae_uha" in summary["history"][-1]
    metrics = evaluate_hamiltonian(out / "best.pt", data, frames=2, scf_frames=0)
    assert np.isfinite(metrics["h_mae_uha"])
    state = load_checkpoint(out / "best.pt", kind="hamiltonian")
    _, checks = hamiltonian_checks(out / "best.pt", state, CheckOptions(samples=2))
    generator = torch.Generator().manual_seed(0)
    for check in checks:
        assert check.measure(torch.float64, generator) < 1e-10, check.name
