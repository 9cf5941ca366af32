"""The ethanol anomaly of issue 12, checked at each place a bug could hide (three elements whose
shells differ: C, O and H in STO-3G are 0e+0e+1o, 0e+0e+1o and 0e).

* the evaluation path on the TRUE Fock matrix: exact orbital energies, orbital cosine 1, SCF from its
  density converged in <= 2 iterations at the same energy;
* truth + small symmetric noise: orbital-energy errors scale linearly with the noise;
* the model's AO layout is pyscf_to_irreps' for ethanol (STO-3G and def2-SVP);
* an oracle through the model's own assembly (orientation of pairs, same-element symmetrisation,
  the expansion of every C/O/H shell pair) rebuilds the true F to rounding;
* the species table maps each element to its own shells, and the block statistics are per element
  (pair): the true blocks normalised by their own head's mean/scale have unit RMS.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pyscf")

from equiscale.quantum.basis import atom_irreps, pyscf_to_irreps, shells_of  # noqa: E402
from equiscale.quantum.expansion import TensorExpansion  # noqa: E402
from equiscale.quantum.geometry import displaced_frames  # noqa: E402
from equiscale.quantum.labels import label_frame, make_molecule  # noqa: E402
from equiscale.quantum.model import HamiltonianModel, assemble_hamiltonian  # noqa: E402
from equiscale.quantum.properties import occupied_count  # noqa: E402

BASIS = "sto-3g"


@pytest.fixture(scope="module")
def ethanol():
    """Three displaced ethanol frames, HF/STO-3G, with their PySCF molecules (about 2 s)."""
    frames = []
    for frame in displaced_frames("ethanol", 3, seed=5):
        labels = label_frame(frame.numbers, frame.positions, BASIS, "hf", polarizability=False, conv_tol=1e-11)
        mol = make_molecule(frame.numbers, frame.positions, BASIS)
        frames.append({"numbers": frame.numbers, "positions": frame.positions, "mol": mol, **labels})
    return frames


def _metrics(h, frame):
    from equiscale.quantum.evaluate import _orbital_metrics

    occupied = occupied_count(frame["numbers"].tolist())
    return _orbital_metrics(torch.as_tensor(h), torch.as_tensor(frame["fock"]), torch.as_tensor(frame["overlap"]),
                            occupied)


def test_the_evaluation_path_is_exact_on_the_true_hamiltonian(ethanol):
    from equiscale.quantum.scf import scf_from_fock

    frame = ethanol[0]
    metrics = _metrics(frame["fock"], frame)
    assert float(metrics["eps_error"].max()) < 1e-12
    stored = frame["orbital_energies"]
    assert np.abs(metrics["eps_true"].numpy() - stored).max() < 1e-7  # the label's own eigenvalues
    assert float(metrics["cosine"].min()) > 1 - 1e-9
    run = scf_from_fock(frame["mol"], frame["fock"], xc="hf", conv_tol=1e-10)
    assert run.converged and run.iterations <= 2
    assert abs(run.energy - frame["energy"]) < 1e-8


def test_errors_scale_linearly_with_small_noise(ethanol):
    frame = ethanol[1]
    noise = np.random.default_rng(0).normal(size=frame["fock"].shape)
    noise = (noise + noise.T) / 2
    errors = [float(_metrics(frame["fock"] + scale * noise, frame)["eps_error"].mean()) for scale in (1e-6, 1e-5)]
    assert 8 < errors[1] / errors[0] < 12.5
    assert errors[1] < 1e-4  # a micro-Hartree-sized H error stays micro-Hartree-sized


@pytest.mark.parametrize("basis", ["sto-3g", "def2-svp"])
def test_model_layout_matches_pyscf_to_irreps(ethanol, basis):
    frame = ethanol[0]
    mol = make_molecule(frame["numbers"], frame["positions"], basis)
    shells = shells_of(mol)
    assert shells[1] != shells[6] and shells[6] == shells[8]  # H differs from C/O in both bases
    irreps, P = pyscf_to_irreps(mol)
    model = HamiltonianModel(shells, lmax=1, channels=2, layers=1, pair_channels=1, radial_hidden=4)
    numbers = torch.as_tensor(frame["numbers"])
    count, offset, num_orbitals = model.layout(numbers, torch.zeros_like(numbers))
    ours = [atom_irreps(shells[int(z)]) for z in frame["numbers"]]
    assert int(num_orbitals) == P.shape[0] == irreps.dim
    assert count.tolist() == [ir.dim for ir in ours]
    assert offset.tolist() == [sum(ir.dim for ir in ours[:a]) for a in range(len(ours))]
    assert str(sum(ours[1:], ours[0])) == str(irreps)
    # the species table: each element its own shells
    for z in (1, 6, 8):
        species = model.species(torch.tensor([z]))
        assert int(model.orbitals_of[species]) == sum(2 * l + 1 for l in shells[z])
        assert model.elements[int(species)] == z


def _blocks(frame, shells):
    sizes = [sum(2 * l + 1 for l in shells[int(z)]) for z in frame["numbers"]]
    starts = np.cumsum([0] + sizes)
    fock = torch.as_tensor(frame["fock"])
    return lambda i, j: fock[starts[i]:starts[i + 1], starts[j]:starts[j + 1]]


def test_assembly_oracle_rebuilds_the_true_fock(ethanol):
    """True blocks (through each head's expansion: project, then expand) placed by the model's own
    assembly give back F exactly: the pair orientation, the offsets and the expansions are right."""
    frame = ethanol[2]
    shells = shells_of(frame["mol"])
    block = _blocks(frame, shells)
    numbers = torch.as_tensor(frame["numbers"])
    positions = torch.as_tensor(frame["positions"])
    model = HamiltonianModel(shells, lmax=1, channels=2, layers=1, pair_channels=1, radial_hidden=4).double()
    _, offset, num_orbitals = model.layout(numbers, torch.zeros_like(numbers))
    irreps = {z: atom_irreps(ls) for z, ls in shells.items()}

    def through(za, zb, blocks):
        expansion = TensorExpansion(irreps[za], irreps[zb])
        return expansion(expansion.project(blocks))

    def diagonal(z, atoms):
        return through(z, z, torch.stack([block(int(a), int(a)) for a in atoms]))

    def pair_features(rows, cols):
        return torch.stack([rows, cols], dim=1)

    def pair_head(za, zb, features):
        assert all(int(numbers[r]) == za and int(numbers[c]) == zb for r, c in features.tolist())
        return through(za, zb, torch.stack([block(int(r), int(c)) for r, c in features.tolist()]))

    h = assemble_hamiltonian(numbers, positions, torch.zeros_like(numbers), offset, num_orbitals, model.elements,
                             diagonal, pair_features, pair_head)[0]
    assert float((h - torch.as_tensor(frame["fock"])).abs().max()) < 1e-12


def test_block_statistics_are_per_element_pair(ethanol):
    """Each head normalises with its own element (pair)'s statistics: the true coefficients of every
    block, normalised by the head they go through, have unit RMS per irrep copy (over all frames)."""
    from equiscale.quantum.training import model_statistics

    shells = shells_of(ethanol[0]["mol"])
    frames = [{k: f[k] for k in ("numbers", "positions", "fock", "energy")} for f in ethanol]
    statistics = model_statistics(frames, shells)
    assert set(statistics["blocks"]) == {"1", "6", "8", "1-1", "1-6", "1-8", "6-6", "6-8"}  # one O
    model = HamiltonianModel(shells, lmax=1, channels=2, layers=1, pair_channels=1, radial_hidden=4,
                             statistics={"blocks": statistics["blocks"]}).double()
    normalised: dict[str, list[torch.Tensor]] = {}
    for frame in ethanol:
        block = _blocks(frame, shells)
        numbers = frame["numbers"].tolist()
        for i, zi in enumerate(numbers):
            for j, zj in enumerate(numbers):
                if zi > zj or (zi == zj and i > j):
                    continue
                head = model.diagonal[str(zi)] if i == j else model.offdiagonal[f"{zi}-{zj}"]
                key = str(zi) if i == j else f"{zi}-{zj}"
                for b in ([block(i, j), block(i, j).T] if zi == zj else [block(i, j)]):
                    normalised.setdefault(key, []).append((head.expansion.project(b) - head.mean) / head.scale)
    for key, values in normalised.items():
        head = model.diagonal[key] if "-" not in key else model.offdiagonal[key]
        coefficients = torch.stack(values)
        for (mul, ir), part in zip(head.expansion.irreps_out, head.expansion.irreps_out.slices()):
            rms = coefficients[:, part].reshape(len(values), mul, ir.dim).square().mean(dim=(0, 2)).sqrt()
            nonzero = rms > 1e-3  # e.g. the antisymmetric 1e of a p-p diagonal block is zero
            assert torch.allclose(rms[nonzero], torch.ones_like(rms[nonzero]), atol=1e-8), (key, str(ir))
