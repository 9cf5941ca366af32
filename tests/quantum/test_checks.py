"""`equiscale check` for hamiltonian checkpoints: the equivariant model passes every check (float64
<= 1e-10, float32 <= 1e-4); the augmented baseline is invariant to permutations and translations
but not equivariant to rotations, which the check exposes."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("pyscf")  # the tiny dataset is labelled with PySCF

from equiscale.check import checkpoint_checks, measure_checks  # noqa: E402
from equiscale.quantum.app import APPLICATION  # noqa: E402
from equiscale.quantum.checks import permutation_error, rotation_errors, translation_error  # noqa: E402
from equiscale.quantum.model import HamiltonianModel  # noqa: E402
from equiscale.quantum.settings import TrainHamiltonian  # noqa: E402
from equiscale.quantum.training import train_hamiltonian  # noqa: E402

from .hamiltonian_data import water_dataset  # noqa: E402

TINY = dict(channels=4, pair_channels=2, radial_hidden=8, quiet=True, threads=1, epochs=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = water_dataset(tmp_path_factory.mktemp("dft"))
    for model in ("equivariant", "baseline"):
        train_hamiltonian(TrainHamiltonian(data=str(data), out=str(root / model), model=model, **TINY))
    return root


def test_equivariant_checkpoint_passes(runs):
    description, checks = checkpoint_checks(runs / "equivariant", applications=[APPLICATION], samples=2)
    assert "equivariant Hamiltonian model" in description and len(checks) == 6
    for result in measure_checks(checks, seed=1):
        assert result.float64 <= 1e-10, result
        assert result.float32 <= 1e-4, result


def test_baseline_is_caught(runs):
    _, checks = checkpoint_checks(runs / "baseline", applications=[APPLICATION], samples=2, label="baseline")
    results = {r.name: r for r in measure_checks(checks, seed=1)}
    assert results["baseline: hamiltonian (rotations, reflections)"].float64 > 1e-3
    assert results["baseline: H (permutations of identical atoms)"].float64 <= 1e-10
    assert results["baseline: all outputs (translations)"].float64 <= 1e-10


def test_measures_on_a_model_with_d_shells():
    torch.manual_seed(0)
    shells = {1: [0, 0, 1], 6: [0, 0, 0, 1, 1, 2], 8: [0, 0, 0, 1, 1, 2]}
    model = HamiltonianModel(shells, channels=4, pair_channels=2, radial_hidden=8).double().eval()
    numbers = torch.tensor([6, 8, 1, 1, 1, 1])  # methanol-like: C, O and four H
    generator = torch.Generator().manual_seed(2)
    positions = 1.3 * torch.randn(6, 3, dtype=torch.float64, generator=generator)
    reflection = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    errors = rotation_errors(model, numbers, positions, shells, reflection)
    assert max(errors.values()) <= 1e-10, errors
    assert permutation_error(model, numbers, positions, shells, generator) <= 1e-10
    assert translation_error(model, numbers, positions, torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)) <= 1e-10
