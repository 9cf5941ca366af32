"""Properties from the Hamiltonian model's trunk, and from a Hamiltonian.

* :class:`PropertyHeads`: the total energy (invariant), the dipole moment (1o) and the static
  polarizability (``0e + 2e``, returned as a symmetric 3x3 Cartesian tensor) from the node features.
* :func:`solve_fock`: orbital energies and coefficients of ``F C = S C eps`` with the true overlap
  ``S``, differentiable (``torch.linalg.eigh`` of ``S^-1/2 F S^-1/2``).
* :func:`density_matrix`: the closed-shell density ``2 C_occ C_occ^T`` of a Fock matrix.

Units: Hartree for energies and matrices, atomic units (e Bohr, e^2 Bohr^2 / Hartree) for the
dipole and polarizability, positions in Angstrom in.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from equiscale import o3
from equiscale.nn.points import scatter_sum
from equiscale.o3._linear import Linear

__all__ = ["BOHR", "PropertyHeads", "symmetric_cartesian", "solve_fock", "padded_orbitals", "density_matrix",
           "occupied_count"]

BOHR = 0.52917721092
"""Angstrom per Bohr."""


SYMMETRIC = o3.CartesianTensor("ij=ji")
"""Symmetric 3x3 tensors as ``1x0e+1x2e``, built once at import (~20 ms): ``torch.compile`` traces the
calls of a constant, where it would trace (and fail on) a cached construction."""


def symmetric_cartesian(scalar: torch.Tensor, quadrupole: torch.Tensor) -> torch.Tensor:
    """The symmetric 3x3 tensor ``(..., 3, 3)`` of a ``0e`` part ``(...,)`` and a ``2e`` part ``(..., 5)``.

    ``T = scalar I + Q(q)`` through ``o3.CartesianTensor("ij=ji")`` (``1x0e+1x2e``, orthonormal: its
    ``0e`` coefficient is ``sqrt(3) scalar``): with e3nn's l = 1 basis (x, y, z), ``D^2(R) q`` maps to
    ``R T R^T``; the trace is ``3 scalar``. (The same numbers as ``sqrt(5) sum_M C^{1 1 2}[:, :, M] q_M``.)
    """
    coefficients = torch.cat([scalar[..., None] * math.sqrt(3.0), quadrupole], dim=-1)
    return SYMMETRIC.to_cartesian(coefficients)


class PropertyHeads(nn.Module):
    """Energy, dipole and polarizability from node features ``(N, irreps_node.dim)``.

    * energy ``E = sum_i e_ref(Z_i) + scale * MLP(scalars_i)``;
    * dipole ``mu = sum_i (q_i - <q>) r_i / Bohr + d_i``: partial charges (neutralised per molecule,
      so a translation changes nothing) times positions, plus atomic dipoles ``d_i`` (1o);
    * polarizability ``alpha = sum_i [ (a_ref(Z_i) + a_i) I + T(b_i) ]`` with ``a_i`` 0e and ``b_i`` 2e.

    ``statistics`` (optional): ``{"reference": {Z: Hartree}, "scale": Hartree, "polarizability":
    {Z: a.u.}}``.
    """

    def __init__(self, irreps_node: o3.Irreps, elements: Sequence[int], statistics: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        stats = statistics or {}
        references = {int(z): float(v) for z, v in stats.get("reference", {}).items()}
        polarizability = {int(z): float(v) for z, v in stats.get("polarizability", {}).items()}
        self.register_buffer("energy_reference", torch.tensor([references.get(z, 0.0) for z in elements], dtype=torch.float64))
        self.register_buffer("alpha_reference", torch.tensor([polarizability.get(z, 0.0) for z in elements], dtype=torch.float64))
        self.energy_scale = float(stats.get("scale", 1.0))
        scalar_index = []
        for (mul, ir), part in zip(irreps_node, irreps_node.slices()):
            if ir == o3.Irrep("0e"):
                scalar_index += list(range(part.start, part.stop))
        self.register_buffer("scalar_index", torch.tensor(scalar_index, dtype=torch.long), persistent=False)
        width = len(scalar_index)
        self.energy = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))
        self.tensors = Linear(irreps_node, o3.Irreps("0e + 1o + 0e + 2e"))  # charge, atomic dipole, alpha 0e, alpha 2e

    def forward(self, x: torch.Tensor, species: torch.Tensor, positions: torch.Tensor, molecule: torch.Tensor,
                num_molecules: int) -> dict[str, torch.Tensor]:
        """``energy (B,)``, ``dipole (B, 3)``, ``polarizability (B, 3, 3)``."""
        dtype = x.dtype
        atomic = self.energy(x.index_select(1, self.scalar_index)).squeeze(-1) * self.energy_scale
        atomic = atomic + self.energy_reference.to(dtype).index_select(0, species)
        energy = scatter_sum(atomic, molecule, num_molecules)
        t = self.tensors(x)
        charge, local_dipole, iso, aniso = t[:, 0], t[:, 1:4], t[:, 4], t[:, 5:10]
        counts = scatter_sum(torch.ones_like(charge), molecule, num_molecules)
        charge = charge - (scatter_sum(charge, molecule, num_molecules) / counts).index_select(0, molecule)
        dipole = scatter_sum(charge[:, None] * positions / BOHR + local_dipole, molecule, num_molecules)
        iso = iso + self.alpha_reference.to(dtype).index_select(0, species)
        polarizability = symmetric_cartesian(scatter_sum(iso, molecule, num_molecules),
                                             scatter_sum(aniso, molecule, num_molecules))
        return {"energy": energy, "dipole": dipole, "polarizability": polarizability}


def solve_fock(fock: torch.Tensor, overlap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orbital energies ``(..., n)`` (ascending) and coefficients ``(..., n, n)`` (columns) of ``F C = S C eps``.

    Through the symmetric orthogonalisation ``X = S^-1/2``: ``eps, C' = eigh(X F X)``, ``C = X C'``,
    so ``C^T S C = 1``. Differentiable in ``F`` (and ``S``), except at degenerate orbital energies.
    """
    values, vectors = torch.linalg.eigh(overlap)
    if bool((values <= 0).any()):
        raise ValueError("the overlap matrix is not positive definite (linearly dependent basis or a wrong matrix)")
    x = (vectors * values.rsqrt().unsqueeze(-2)) @ vectors.transpose(-1, -2)
    fock = 0.5 * (fock + fock.transpose(-1, -2))
    energies, rotated = torch.linalg.eigh(x @ fock @ x)
    return energies, x @ rotated


def padded_orbitals(fock: torch.Tensor, overlap: torch.Tensor, num_orbitals: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`solve_fock` for each molecule of padded ``(B, n, n)`` matrices (the first ``num_orbitals[b]`` AOs)."""
    out = []
    for b, n in enumerate(num_orbitals.tolist()):
        out.append(solve_fock(fock[b, :n, :n], overlap[b, :n, :n]))
    return out


def occupied_count(numbers: torch.Tensor | Sequence[int], charge: int = 0) -> int:
    """Doubly occupied orbitals of a closed-shell molecule: (sum Z - charge) / 2; ValueError if odd."""
    electrons = int(sum(int(z) for z in (numbers.tolist() if isinstance(numbers, torch.Tensor) else numbers))) - charge
    if electrons % 2:
        raise ValueError(f"{electrons} electrons: not a closed-shell molecule (restricted calculations need an even count)")
    return electrons // 2


def density_matrix(fock: torch.Tensor, overlap: torch.Tensor, occupied: int) -> torch.Tensor:
    """The closed-shell density ``2 C_occ C_occ^T`` ``(n, n)`` of the lowest ``occupied`` orbitals of ``fock``."""
    _, coefficients = solve_fock(fock, overlap)
    c = coefficients[..., :occupied]
    return 2.0 * c @ c.transpose(-1, -2)
