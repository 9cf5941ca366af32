"""The *plan* of a Hamiltonian model call, and the placement of blocks by it.

Every data-dependent index computation of :class:`equiscale.quantum.model.HamiltonianModel` lives
here and runs eagerly: AO counts and offsets, the number of orbitals, the atom pairs within the
cutoffs (``nonzero``), and the atoms grouped per element and pairs grouped per element pair. The
result is a plain dict of integer tensors (:func:`hamiltonian_plan`), so the model's numeric core
takes it as an input and does tensor arithmetic only, with shapes read off the plan's tensors: it
compiles with ``fullgraph=True`` and exports with ``torch.export``.

Plan keys (``N`` atoms, ``B`` molecules, ``n`` the padded number of orbitals):

* ``species`` ``(N,)``, ``molecule`` ``(N,)``, ``offset`` ``(N,)`` (first AO of each atom within its
  molecule), ``num_orbitals`` ``(B,)``, ``orbitals`` ``(n,)`` (``arange(n)``: its length is ``n``);
* ``edges`` ``(2, E)``: message-passing pairs (both directions) closer than the trunk cutoff;
* ``atoms``: ``{"Z": (K,)}`` the atoms of each element present;
* ``pairs``: ``{"Za-Zb": (2, K)}`` (``Za <= Zb``) unordered pairs within the pair cutoff, rows the
  atom of lower atomic number; element (pair)s absent from the batch are absent from the dicts.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

__all__ = ["pair_key", "symmetric_blocks", "molecule_pairs", "place_blocks", "orbital_layout", "block_groups",
           "hamiltonian_plan", "assemble_planned", "assemble_hamiltonian"]


def pair_key(za: int, zb: int) -> str:
    """The name of the ordered element pair (a ModuleDict and plan key), e.g. ``"1-8"``."""
    return f"{int(za)}-{int(zb)}"


def symmetric_blocks(forward: torch.Tensor, backward: torch.Tensor | None = None) -> torch.Tensor:
    """``(G + G'^T) / 2`` for blocks ``(..., n, m)`` and ``(..., m, n)`` (``G'`` = ``G`` if None)."""
    backward = forward if backward is None else backward
    return 0.5 * (forward + backward.transpose(-1, -2))


def molecule_pairs(positions: torch.Tensor, molecule: torch.Tensor, radius: float | None) -> torch.Tensor:
    """Unordered atom pairs ``(2, P)`` of the same molecule (closer than ``radius`` when given), ``i < j``."""
    with torch.no_grad():
        same = molecule[:, None] == molecule[None, :]
        if radius is not None:
            same = same & (torch.cdist(positions, positions) < radius)
        return torch.triu(same, diagonal=1).nonzero().T


def place_blocks(matrix: torch.Tensor, blocks: torch.Tensor, molecule: torch.Tensor, row: torch.Tensor,
                 col: torch.Tensor) -> torch.Tensor:
    """``matrix[molecule[k], row[k] + a, col[k] + b] = blocks[k, a, b]`` (out of place, differentiable)."""
    k, n, m = blocks.shape
    rows = (row[:, None] + torch.arange(n, device=row.device))[:, :, None].expand(k, n, m)
    cols = (col[:, None] + torch.arange(m, device=col.device))[:, None, :].expand(k, n, m)
    return matrix.index_put((molecule[:, None, None].expand(k, n, m), rows, cols), blocks)


def orbital_layout(count: torch.Tensor, molecule: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(offset (N,) within its molecule, num_orbitals (B,))`` from AO counts ``(N,)`` and molecule indices ``(N,)``."""
    num_molecules = int(molecule.max().item()) + 1
    num_orbitals = torch.zeros(num_molecules, dtype=torch.long, device=count.device).index_add_(0, molecule, count)
    start = torch.cumsum(num_orbitals, 0) - num_orbitals
    return torch.cumsum(count, 0) - count - start[molecule], num_orbitals


def block_groups(numbers: torch.Tensor, positions: torch.Tensor, molecule: torch.Tensor, elements: Sequence[int],
                 pair_cutoff: float | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(atoms, pairs)``: atom indices ``(K,)`` per element present and pairs ``(2, K)`` per element pair
    ``Za <= Zb`` present (rows: the lower atomic number), in the order of ``elements``."""
    atoms = {}
    for z in elements:
        chosen = (numbers == z).nonzero().flatten()
        if chosen.numel():
            atoms[str(int(z))] = chosen
    groups: dict[str, torch.Tensor] = {}
    pairs = molecule_pairs(positions, molecule, pair_cutoff)
    if not pairs.shape[1]:
        return atoms, groups
    first, second = pairs
    swap = numbers[first] > numbers[second]
    rows, cols = torch.where(swap, second, first), torch.where(swap, first, second)
    for za in elements:
        for zb in elements:
            if za <= zb:
                chosen = ((numbers[rows] == za) & (numbers[cols] == zb)).nonzero().flatten()
                if chosen.numel():
                    groups[pair_key(za, zb)] = torch.stack([rows[chosen], cols[chosen]])
    return atoms, groups


def hamiltonian_plan(numbers: torch.Tensor, positions: torch.Tensor, molecule: torch.Tensor, species: torch.Tensor,
                     count: torch.Tensor, elements: Sequence[int], cutoff: float,
                     pair_cutoff: float | None) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
    """The plan (module docstring) of atoms ``numbers (N,)`` at ``positions (N, 3)`` in molecules ``(N,)``
    with species indices ``(N,)`` and AO counts ``(N,)``; ``cutoff`` the trunk's message-passing radius."""
    offset, num_orbitals = orbital_layout(count, molecule)
    edges = molecule_pairs(positions, molecule, cutoff)
    atoms, pairs = block_groups(numbers, positions, molecule, elements, pair_cutoff)
    size = int(num_orbitals.max().item())
    return {"species": species, "molecule": molecule, "offset": offset, "num_orbitals": num_orbitals,
            "orbitals": torch.arange(size, device=numbers.device), "edges": torch.cat([edges, edges.flip(0)], dim=1),
            "atoms": atoms, "pairs": pairs}


def assemble_planned(positions: torch.Tensor, molecule: torch.Tensor, offset: torch.Tensor, num_orbitals: torch.Tensor,
                     size: int, atoms: Mapping[str, torch.Tensor], pairs: Mapping[str, torch.Tensor],
                     diagonal: Callable[[int, torch.Tensor], torch.Tensor],
                     pair_features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     pair_head: Callable[[int, int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The padded symmetric ``(B, size, size)`` matrix from the groups of :func:`block_groups` (no data-dependent
    control flow: traceable).

    ``diagonal(z, atoms)`` gives ``G_ii`` ``(K, n_z, n_z)`` for atoms of element z;
    ``pair_features(rows, cols)`` the features of ordered pairs (one call for all of them) and
    ``pair_head(za, zb, features)`` their blocks ``G_ij`` ``(K, n_za, n_zb)`` for ``za <= zb`` (rows:
    the lower atomic number). Symmetry by construction: ``H_ii = (G_ii + G_ii^T)/2``, ``H_ij = B``,
    ``H_ji = B^T`` with ``B = G_ij`` for two elements and ``B = (G_ij + G_ji^T)/2`` for one (so it
    does not depend on which atom comes first).
    """
    hamiltonian = positions.new_zeros(num_orbitals.shape[0], size, size)
    for key, chosen in atoms.items():
        blocks = symmetric_blocks(diagonal(int(key), chosen))
        hamiltonian = place_blocks(hamiltonian, blocks, molecule[chosen], offset[chosen], offset[chosen])
    if not pairs:
        return hamiltonian
    groups = [(int(key.split("-")[0]), int(key.split("-")[1]), g[0], g[1]) for key, g in pairs.items()]
    ordered_rows = torch.cat([r for _, _, r, c in groups] + [c for za, zb, r, c in groups if za == zb])
    ordered_cols = torch.cat([c for _, _, r, c in groups] + [r for za, zb, r, c in groups if za == zb])
    features = pair_features(ordered_rows, ordered_cols)
    start, reverse = 0, sum(r.shape[0] for _, _, r, _ in groups)
    for za, zb, r, c in groups:
        k = r.shape[0]
        blocks = pair_head(za, zb, features[start:start + k])
        start += k
        if za == zb:
            blocks = symmetric_blocks(blocks, pair_head(za, zb, features[reverse:reverse + k]))
            reverse += k
        hamiltonian = place_blocks(hamiltonian, blocks, molecule[r], offset[r], offset[c])
        hamiltonian = place_blocks(hamiltonian, blocks.transpose(-1, -2), molecule[r], offset[c], offset[r])
    return hamiltonian


def assemble_hamiltonian(numbers: torch.Tensor, positions: torch.Tensor, molecule: torch.Tensor, offset: torch.Tensor,
                         num_orbitals: torch.Tensor, elements: Sequence[int],
                         diagonal: Callable[[int, torch.Tensor], torch.Tensor],
                         pair_features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                         pair_head: Callable[[int, int, torch.Tensor], torch.Tensor],
                         pair_cutoff: float | None = None) -> torch.Tensor:
    """The padded symmetric ``(B, n, n)`` matrix of atoms ``numbers (N,)`` from block functions:
    :func:`block_groups` (eager) then :func:`assemble_planned` (same callbacks)."""
    atoms, pairs = block_groups(numbers, positions, molecule, elements, pair_cutoff)
    size = int(num_orbitals.max().item())
    return assemble_planned(positions, molecule, offset, num_orbitals, size, atoms, pairs, diagonal, pair_features,
                            pair_head)
