"""The non-equivariant baseline: plain MLPs on Cartesian coordinates, trained with random O(3) augmentation.

:class:`BaselineHamiltonian` has the same inputs, outputs, block layout, symmetrisation (``H``
symmetric, identical atoms interchangeable) and data statistics as
:class:`~equiscale.quantum.model.HamiltonianModel`, but its networks see raw ``x, y, z`` components
of the bond vectors: it is invariant to translations and permutations, not to rotations. It learns
the rotations from :func:`augment`, which rotates (and reflects) a training batch at random —
positions, ``F`` and ``S`` as ``D F D^T``, the dipole as ``R mu`` and the polarizability as
``R alpha R^T`` — so the comparison with the equivariant model is augmentation against construction.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from equiscale import o3
from equiscale.quantum.basis import atom_irreps
from equiscale.quantum.expansion import TensorExpansion
from equiscale.quantum.model import add_guess, assemble_hamiltonian, molecule_pairs, pair_key, species_indices, species_table
from equiscale.quantum.properties import BOHR

__all__ = ["BaselineHamiltonian", "augment", "random_o3"]


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


class _Head(nn.Module):
    def __init__(self, width_in: int, width: int, rows: o3.Irreps, cols: o3.Irreps, stats: Mapping[str, Any] | None) -> None:
        super().__init__()
        self.expansion = TensorExpansion(rows, cols)
        dim = self.expansion.irreps_out.dim
        self.mlp = _mlp([width_in, width, dim])
        self.register_buffer("mean", torch.tensor(stats["mean"], dtype=torch.float64) if stats else torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(stats["scale"], dtype=torch.float64) if stats else torch.ones(dim, dtype=torch.float64))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.expansion(self.mean.to(features.dtype) + self.scale.to(features.dtype) * self.mlp(features))


class BaselineHamiltonian(nn.Module):
    """A plain-MLP Hamiltonian model (see the module docstring); the arguments of :class:`HamiltonianModel`
    that apply, and ``width``, the hidden width of every MLP."""

    def __init__(self, shells: Mapping[int, list[int]], width: int = 64, layers: int = 2, cutoff: float = 5.0,
                 pair_cutoff: float | None = None, statistics: Mapping[str, Any] | None = None, guess: str = "none",
                 **_: Any) -> None:
        super().__init__()
        shells = {int(z): [int(l) for l in ls] for z, ls in shells.items()}
        self.config: dict[str, Any] = dict(shells=shells, width=int(width), layers=int(layers), cutoff=float(cutoff),
                                           pair_cutoff=pair_cutoff, statistics=statistics, guess=str(guess))
        self.guess = str(guess)
        self.elements, self.cutoff, self.pair_cutoff = sorted(shells), float(cutoff), pair_cutoff
        self.ao_irreps = {z: atom_irreps(ls) for z, ls in shells.items()}
        self.register_buffer("species_of", species_table(self.elements), persistent=False)
        self.register_buffer("orbitals_of", torch.tensor([self.ao_irreps[z].dim for z in self.elements]), persistent=False)
        self.embedding = nn.Embedding(len(self.elements), width)
        self.messages = nn.ModuleList([_mlp([2 * width + 4, width, width]) for _ in range(layers)])
        self.updates = nn.ModuleList([_mlp([2 * width, width, width]) for _ in range(layers)])
        stats = statistics or {}
        blocks = stats.get("blocks", {})
        self.diagonal = nn.ModuleDict({str(z): _Head(width, width, self.ao_irreps[z], self.ao_irreps[z], blocks.get(str(z)))
                                       for z in self.elements})
        self.offdiagonal = nn.ModuleDict({pair_key(a, b): _Head(2 * width + 4, width, self.ao_irreps[a], self.ao_irreps[b],
                                                                blocks.get(pair_key(a, b)))
                                          for a in self.elements for b in self.elements if a <= b})
        energy = stats.get("energy", {})
        references = {int(z): float(v) for z, v in energy.get("reference", {}).items()}
        self.register_buffer("energy_reference", torch.tensor([references.get(z, 0.0) for z in self.elements], dtype=torch.float64))
        self.energy_scale = float(energy.get("scale", 1.0))
        self.readout = _mlp([width, width, 1 + 1 + 3 + 6])  # energy, charge, atomic dipole, polarizability (upper triangle)

    def species(self, numbers: torch.Tensor) -> torch.Tensor:
        """Species indices ``(N,)``; ValueError naming elements the model has no basis for."""
        return species_indices(self.species_of, numbers, self.elements)

    def _edge_input(self, h: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        vectors = positions.index_select(0, cols) - positions.index_select(0, rows)
        return torch.cat([h.index_select(0, rows), h.index_select(0, cols), vectors, vectors.norm(dim=-1, keepdim=True)], -1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The outputs of :meth:`HamiltonianModel.forward`."""
        numbers, positions = batch["numbers"], batch["positions"]
        if not bool(torch.isfinite(positions).all()):
            raise ValueError("positions hold NaN or infinite values")
        molecule = batch.get("batch")
        molecule = torch.zeros_like(numbers) if molecule is None else molecule
        species = self.species(numbers)
        count = self.orbitals_of[species]
        num_molecules = int(molecule.max().item()) + 1
        num_orbitals = torch.zeros(num_molecules, dtype=torch.long, device=numbers.device).index_add_(0, molecule, count)
        offset = torch.cumsum(count, 0) - count - (torch.cumsum(num_orbitals, 0) - num_orbitals)[molecule]
        pairs = molecule_pairs(positions, molecule, self.cutoff)
        edges = torch.cat([pairs, pairs.flip(0)], 1)
        h = self.embedding(species)
        for message, update in zip(self.messages, self.updates):
            m = torch.zeros_like(h).index_add_(0, edges[0], message(self._edge_input(h, positions, edges[0], edges[1])))
            h = h + update(torch.cat([h, m], -1))
        hamiltonian = assemble_hamiltonian(numbers, positions, molecule, offset, num_orbitals, self.elements,
                                           lambda z, atoms: self.diagonal[str(z)](h.index_select(0, atoms)),
                                           lambda rows, cols: self._edge_input(h, positions, rows, cols),
                                           lambda a, b, features: self.offdiagonal[pair_key(a, b)](features),
                                           self.pair_cutoff)
        out = self.readout(h)
        atomic = out[:, 0] * self.energy_scale + self.energy_reference.to(h.dtype).index_select(0, species)
        energy = torch.zeros(num_molecules, dtype=h.dtype, device=h.device).index_add(0, molecule, atomic)
        charge = out[:, 1]
        counts = torch.zeros(num_molecules, dtype=h.dtype, device=h.device).index_add(0, molecule, torch.ones_like(charge))
        charge = charge - (torch.zeros_like(counts).index_add(0, molecule, charge) / counts)[molecule]
        dipole = torch.zeros(num_molecules, 3, dtype=h.dtype, device=h.device).index_add(
            0, molecule, charge[:, None] * positions / BOHR + out[:, 2:5])
        upper = torch.zeros(num_molecules, 6, dtype=h.dtype, device=h.device).index_add(0, molecule, out[:, 5:11])
        i, j = torch.triu_indices(3, 3)
        triangle = h.new_zeros(num_molecules, 9).index_add(1, i * 3 + j, upper).reshape(num_molecules, 3, 3)
        polarizability = triangle + triangle.transpose(-1, -2) - torch.diag_embed(torch.diagonal(triangle, dim1=-2, dim2=-1))
        return {"hamiltonian": add_guess(hamiltonian, batch, self.guess), "num_orbitals": num_orbitals, "energy": energy,
                "dipole": dipole,
                "polarizability": polarizability}


def random_o3(generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A Haar-random element of O(3) (rotation or reflection with equal probability), ``(3, 3)``."""
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    return (q * torch.sign(torch.diagonal(r))).to(dtype)


def augment(batch: Mapping[str, torch.Tensor], shells: Mapping[int, list[int]],
            generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The batch rotated (and reflected) by one random element of O(3): positions, ``fock`` and
    ``overlap`` (``D F D^T`` per molecule, padding untouched), ``dipole`` and ``polarizability``."""
    from equiscale.quantum.basis import molecule_irreps

    dtype = batch["positions"].dtype
    rotation = random_o3(generator)
    r = rotation.to(device=batch["positions"].device, dtype=dtype)
    out = dict(batch)
    out["positions"] = batch["positions"] @ r.T
    size = batch["fock"].shape[-1]
    d = torch.zeros(batch["fock"].shape[0], size, size, dtype=torch.float64)
    for b in range(d.shape[0]):
        numbers = batch["numbers"][batch["batch"] == b].tolist()
        block = molecule_irreps(numbers, shells).D_from_matrix(rotation)
        n = block.shape[0]
        d[b, :n, :n] = block
        d[b, n:, n:] = torch.eye(size - n, dtype=torch.float64)
    d = d.to(device=batch["fock"].device, dtype=dtype)
    for key in ("fock", "overlap"):
        if key in batch:
            out[key] = d @ batch[key] @ d.transpose(-1, -2)
    if "dipole" in batch:
        out["dipole"] = batch["dipole"] @ r.T
    if "polarizability" in batch:
        out["polarizability"] = r @ batch["polarizability"] @ r.T
    return out
