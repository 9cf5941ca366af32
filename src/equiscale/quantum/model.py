"""``HamiltonianModel``: an O(3)-equivariant model of the Fock / Kohn-Sham matrix in an atomic-orbital basis.

Trunk: atoms are nodes with irreps features ``C x (0e + 0o + 1o + 1e + ... )`` up to ``lmax`` (both
parities: a p-p block holds a pseudo-vector 1e), updated by the shared message-passing block of
:mod:`equiscale.nn.points` (spherical harmonics of the bond directions, radial weights of the bond
lengths, computed once per call and passed to each layer's public forward), a linear
self-connection and a gate.

Heads (the "tensor expansion", :mod:`equiscale.quantum.expansion`):

* diagonal block of atom ``i`` (element Z): ``Linear_Z(x_i + TP(x_i', x_i'))`` gives the
  coefficients of every ``l1 x l2`` irrep of every shell pair of Z, expanded through
  Clebsch-Gordan into the block ``G_ii``;
* off-diagonal block of a pair ``(i, j)`` (rows: atom ``i``, columns: atom ``j``):
  ``Linear_{Zi Zj}(TP(x_i', x_j') + TP_r([x_i', x_j'], Y(r_ij)))`` with ``r_ij = p_j - p_i``, the
  second product weighted by a radial MLP of ``|r_ij|``, expanded into ``G_ij``.

Each coefficient is ``mean + scale * output`` with a mean on the invariant (``L = 0``) entries only
and one scale per irrep copy, both from the training data (:func:`block_statistics`), so the
network fits a residual of order one.

Symmetry, by construction:

* rotations and reflections: every feature is an irrep of O(3) and the expansion is exact;
* ``H`` is symmetric: an unordered pair is oriented with the lower atomic number on the rows;
  ``H_ij = B``, ``H_ji = B^T``, where for two atoms of the same element ``B = (G_ij + G_ji^T) / 2``
  (which does not depend on which one is ``i``), and ``H_ii = (G_ii + G_ii^T) / 2``;
* permutations of identical atoms permute rows and columns (nothing depends on atom indices);
* translations: only differences of positions enter.

Batches: ``{"numbers" (N,), "positions" (N, 3) Angstrom, "batch" (N,) molecule index (sorted)}``;
the output ``hamiltonian`` is padded ``(B, n_max, n_max)`` Hartree in the irreps AO basis (each
molecule's AOs are its atoms' shells in atom order), zero beyond ``num_orbitals (B,)``.

Compile and export: ``forward(batch) = core(positions, plan(batch))``. :meth:`HamiltonianModel.plan`
runs eagerly (input checks, and every data-dependent index computation of
:mod:`equiscale.quantum.plan`: layout, pairs within the cutoffs, atoms and pairs grouped by
element); :meth:`HamiltonianModel.core` is tensor arithmetic with shapes from the plan's tensors, so
``torch.export.export`` and ``torch.compile(fullgraph=True)`` take it with the plan as an input.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from equiscale import o3
from equiscale.nn.points import Gate, GaussianBasis, MessagePassing, RadialMLP, uvu_instructions
from equiscale.o3._linear import Linear
from equiscale.quantum.basis import atom_irreps
from equiscale.quantum.expansion import TensorExpansion
from equiscale.quantum.plan import (assemble_hamiltonian, assemble_planned, hamiltonian_plan, molecule_pairs, orbital_layout,
                                    pair_key, place_blocks, symmetric_blocks)
from equiscale.quantum.properties import PropertyHeads

__all__ = ["HamiltonianModel", "add_guess", "species_table", "species_indices", "hidden_irreps", "pair_key", "symmetric_blocks", "molecule_pairs", "place_blocks",
           "assemble_hamiltonian"]


def hidden_irreps(channels: int, lmax: int) -> o3.Irreps:
    """``channels`` copies of every irrep up to ``lmax``, both parities, sorted."""
    return o3.Irreps([(channels, (l, p)) for l in range(lmax + 1) for p in (1, -1)]).sort().irreps.simplify()


def add_guess(hamiltonian: torch.Tensor, batch: Mapping[str, torch.Tensor], kind: str) -> torch.Tensor:
    """``hamiltonian + batch["guess"]`` for a model that learns the difference to a cheap guess
    (:mod:`equiscale.quantum.guess`; ``kind`` ``"none"``: unchanged). The guess is padded ``(B, n', n')``
    with ``n' >= n``; ValueError when the batch has none."""
    if kind == "none":
        return hamiltonian
    guess = batch.get("guess")
    if guess is None:
        raise ValueError(f"this model learns the difference to the {kind!r} guess: the batch needs 'guess' (B, n, n), "
                         f"e.g. equiscale.quantum.guess.frame_guess(numbers, positions, basis, {kind!r})")
    n = hamiltonian.shape[-1]
    return hamiltonian + guess[:, :n, :n].to(hamiltonian.dtype)


class _Interaction(nn.Module):
    """``x -> gate(conv(x) + self_connection(x))``, plus ``x`` when the irreps match."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, options: dict[str, Any]) -> None:
        super().__init__()
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir == o3.Irrep("0e")])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir != o3.Irrep("0e")])
        gates = o3.Irreps([(gated.num_irreps, "0e")])
        self.gate = Gate(scalars, [torch.nn.functional.silu], gates, [torch.sigmoid], gated)
        self.conv = MessagePassing(irreps_in, self.gate.irreps_in, irreps_sh, **options)
        self.self_connection = Linear(irreps_in, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out
        self.residual = irreps_in == self.irreps_out

    def forward(self, x: torch.Tensor, sh: torch.Tensor, lengths: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        update = self.self_connection(x)
        if edge_index.shape[1]:
            weights = self.conv.edge_weights(lengths)
            update = update + self.conv(x, edge_index=edge_index, edge_attr=sh, edge_weights=weights)
        out = self.gate(update)
        return x + out if self.residual else out


class _CoefficientHead(nn.Module):
    """Features -> normalised expansion coefficients -> blocks of one element (pair)."""

    def __init__(self, irreps_in: o3.Irreps, rows: o3.Irreps, cols: o3.Irreps, stats: Mapping[str, Any] | None) -> None:
        super().__init__()
        self.expansion = TensorExpansion(rows, cols)
        self.linear = Linear(irreps_in, self.expansion.irreps_out)
        dim = self.expansion.irreps_out.dim
        mean = torch.zeros(dim, dtype=torch.float64)
        scale = torch.ones(dim, dtype=torch.float64)
        if stats is not None:
            mean, scale = torch.tensor(stats["mean"], dtype=torch.float64), torch.tensor(stats["scale"], dtype=torch.float64)
            if mean.shape != (dim,) or scale.shape != (dim,):
                raise ValueError(f"block statistics of size {tuple(mean.shape)} do not fit the {dim} coefficients of "
                                 f"({rows}) x ({cols})")
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        coefficients = self.mean.to(features.dtype) + self.scale.to(features.dtype) * self.linear(features)
        return self.expansion(coefficients)


def species_table(elements: Sequence[int]) -> torch.Tensor:
    """``(119,)`` long: the index of each atomic number in ``elements``, -1 for the others."""
    table = torch.full((119,), -1, dtype=torch.long)
    table[torch.tensor(list(elements), dtype=torch.long)] = torch.arange(len(elements))
    return table


def species_indices(table: torch.Tensor, numbers: torch.Tensor, elements: Sequence[int]) -> torch.Tensor:
    """Species indices ``(N,)`` of atomic numbers ``(N,)`` through :func:`species_table`; ValueError naming
    the elements a model trained for ``elements`` does not know."""
    species = table[numbers.clamp(0, 118)]
    bad = (numbers < 1) | (numbers > 118) | (species < 0)
    if bool(bad.any()):
        raise ValueError(f"element(s) Z={sorted(set(numbers[bad].tolist()))} not known to this model "
                         f"(trained for Z={list(elements)})")
    return species


class HamiltonianModel(nn.Module):
    """Predicts the AO Hamiltonian (Fock/KS matrix, Hartree) and properties of molecules.

    Args:
        shells: for each atomic number, the angular momentum of each shell in PySCF's order
            (``{1: [0], 8: [0, 0, 1]}`` for STO-3G); the AO irreps of an atom are one irrep per shell.
        lmax: highest degree of the node features and bond harmonics.
        channels: multiplicity of each irrep of the node features.
        layers: message-passing layers.
        cutoff: message-passing radius, Angstrom.
        pair_channels: multiplicity of each irrep of the pair features.
        pair_cutoff: off-diagonal blocks only for pairs closer than this (None: every pair of a molecule).
        num_radial_basis, radial_hidden: radial basis functions and hidden width of the radial MLPs.
        avg_num_neighbors: normalises the messages.
        statistics: from :func:`equiscale.quantum.training.model_statistics`: ``blocks`` (mean and scale
            of the coefficients per element and element pair) and ``energy`` (references); None: zeros/ones.
        guess: ``"none"``, or the cheap guess (:mod:`equiscale.quantum.guess`) whose difference to ``F``
            the network predicts; then batches carry ``guess`` ``(B, n, n)`` and ``H = guess + network``.

    ``config`` holds the arguments: ``HamiltonianModel(**model.config)`` rebuilds the architecture.
    """

    def __init__(self, shells: Mapping[int, list[int]], lmax: int = 2, channels: int = 16, layers: int = 2,
                 cutoff: float = 5.0, pair_channels: int = 8, pair_cutoff: float | None = None, num_radial_basis: int = 8,
                 radial_hidden: int = 32, avg_num_neighbors: float = 1.0, statistics: Mapping[str, Any] | None = None,
                 guess: str = "none") -> None:
        super().__init__()
        shells = {int(z): [int(l) for l in ls] for z, ls in shells.items()}
        if not shells or any(not ls for ls in shells.values()) or min(shells) < 1 or max(shells) > 118:
            raise ValueError(f"shells must map atomic numbers 1..118 to non-empty lists of shell l, got {shells}")
        for name, value in (("lmax", lmax), ("channels", channels), ("layers", layers), ("pair_channels", pair_channels)):
            if int(value) != value or value < (0 if name == "lmax" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'lmax' else 'positive'} integer, got {value!r}")
        self.config: dict[str, Any] = dict(shells=shells, lmax=int(lmax), channels=int(channels), layers=int(layers),
                                           cutoff=float(cutoff), pair_channels=int(pair_channels), pair_cutoff=pair_cutoff,
                                           num_radial_basis=int(num_radial_basis), radial_hidden=int(radial_hidden),
                                           avg_num_neighbors=float(avg_num_neighbors), statistics=statistics, guess=str(guess))
        self.guess = str(guess)
        self.elements = sorted(shells)
        self.shells, self.cutoff, self.pair_cutoff = shells, float(cutoff), pair_cutoff
        self.ao_irreps = {z: atom_irreps(ls) for z, ls in shells.items()}
        self.register_buffer("species_of", species_table(self.elements), persistent=False)
        self.register_buffer("orbitals_of", torch.tensor([self.ao_irreps[z].dim for z in self.elements]), persistent=False)

        # trunk
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.irreps_hidden = hidden_irreps(channels, lmax)
        options = dict(num_radial_basis=num_radial_basis, radial_hidden=(radial_hidden,), avg_num_neighbors=avg_num_neighbors,
                       cutoff=cutoff)
        self.embedding = nn.Embedding(len(self.elements), channels)
        irreps = o3.Irreps([(channels, "0e")])
        self.interactions = nn.ModuleList()
        for _ in range(layers):
            self.interactions.append(_Interaction(irreps, self.irreps_hidden, self.irreps_sh, options))
            irreps = self.interactions[-1].irreps_out
        self.irreps_node = irreps

        # pair features: every irrep some block needs
        stats = statistics or {}
        blocks = stats.get("blocks", {})
        needed = set()
        for za in self.elements:
            for zb in self.elements:
                needed |= {ir for _, ir in TensorExpansion(self.ao_irreps[za], self.ao_irreps[zb]).irreps_out}
        self.irreps_pair = o3.Irreps([(pair_channels, ir) for ir in sorted(needed)])
        small = o3.Irreps([(pair_channels, ir) for _, ir in self.irreps_node])
        self.reduce = Linear(self.irreps_node, small)
        self.self_product = o3.FullyConnectedTensorProduct(small, small, self.irreps_pair)
        self.self_linear = Linear(self.irreps_node, self.irreps_pair)
        self.pair_product = o3.FullyConnectedTensorProduct(small, small, self.irreps_pair)
        both = (small + small).simplify()
        lmax_pair = max(ir.l for ir in needed)
        self.irreps_pair_sh = o3.Irreps.spherical_harmonics(lmax_pair)
        mid, instructions = uvu_instructions(both, self.irreps_pair_sh, self.irreps_pair)
        self.bond_product = o3.TensorProduct(both, self.irreps_pair_sh, mid, instructions, shared_weights=False,
                                             internal_weights=False)
        self.bond_linear = Linear(mid.simplify(), self.irreps_pair)
        reach = float(pair_cutoff) if pair_cutoff is not None else max(2.0 * float(cutoff), 8.0)
        self.pair_basis = GaussianBasis(num_radial_basis, reach)
        self.pair_radial = RadialMLP([num_radial_basis, radial_hidden, self.bond_product.weight_numel])
        self.diagonal = nn.ModuleDict({str(z): _CoefficientHead(self.irreps_pair, self.ao_irreps[z], self.ao_irreps[z],
                                                                blocks.get(str(z))) for z in self.elements})
        self.offdiagonal = nn.ModuleDict({pair_key(za, zb): _CoefficientHead(self.irreps_pair, self.ao_irreps[za],
                                                                             self.ao_irreps[zb], blocks.get(pair_key(za, zb)))
                                          for za in self.elements for zb in self.elements if za <= zb})
        self.properties = PropertyHeads(self.irreps_node, self.elements, stats.get("energy"))

    # --- inputs -----------------------------------------------------------------------------
    def species(self, numbers: torch.Tensor) -> torch.Tensor:
        """Species indices ``(N,)``; ValueError naming elements the model has no basis for."""
        return species_indices(self.species_of, numbers, self.elements)

    def _check(self, batch: Mapping[str, torch.Tensor]) -> None:
        positions = batch["positions"]
        if positions.dim() != 2 or positions.shape[1] != 3 or positions.shape[0] == 0:
            raise ValueError(f"positions must have shape (N, 3) with N > 0, got {tuple(positions.shape)}")
        if not bool(torch.isfinite(positions).all()):
            raise ValueError("positions hold NaN or infinite values")
        dtype = self.embedding.weight.dtype
        if positions.dtype != dtype:
            raise ValueError(f"the batch is {positions.dtype} but the model's parameters are {dtype}: convert one of them")

    @staticmethod
    def _molecule(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        positions = batch["positions"]
        molecule = batch.get("batch")
        return torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device) if molecule is None else molecule

    def layout(self, numbers: torch.Tensor, molecule: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ao_count (N,), ao_offset (N,) within its molecule, num_orbitals (B,))``."""
        count = self.orbitals_of[self.species(numbers)]
        return (count, *orbital_layout(count, molecule))

    def plan(self, batch: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The eager part of :meth:`forward`: input checks and every data-dependent index computation,
        as the dict of integer tensors of :func:`equiscale.quantum.plan.hamiltonian_plan` (for :meth:`core`)."""
        self._check(batch)
        numbers, positions = batch["numbers"], batch["positions"]
        molecule = self._molecule(batch)
        species = self.species(numbers)
        return hamiltonian_plan(numbers, positions, molecule, species, self.orbitals_of[species], self.elements,
                                self.cutoff, self.pair_cutoff)

    # --- the model --------------------------------------------------------------------------
    def node_features(self, species: torch.Tensor, positions: torch.Tensor, molecule: torch.Tensor,
                      edges: torch.Tensor | None = None) -> torch.Tensor:
        """Trunk features ``(N, irreps_node.dim)``; ``edges`` ``(2, E)`` both directions (None: the pairs of a
        molecule within the cutoff)."""
        if edges is None:
            pairs = molecule_pairs(positions, molecule, self.cutoff)
            edges = torch.cat([pairs, pairs.flip(0)], dim=1)
        vectors = positions.index_select(0, edges[0]) - positions.index_select(0, edges[1])
        sh = o3.spherical_harmonics(self.irreps_sh, vectors, normalize=True, normalization="component")
        lengths = vectors.norm(dim=-1)
        x = self.embedding(species)
        for layer in self.interactions:
            x = layer(x, sh, lengths, edges)
        return x

    def _pair_features(self, small: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        vectors = positions.index_select(0, cols) - positions.index_select(0, rows)
        sh = o3.spherical_harmonics(self.irreps_pair_sh, vectors, normalize=True, normalization="component")
        weights = self.pair_radial(self.pair_basis(vectors.norm(dim=-1)))
        xi, xj = small.index_select(0, rows), small.index_select(0, cols)
        both = torch.cat([xi, xj], dim=-1)  # the mul_ir layout of small + small (simplify merges, never reorders)
        return self.pair_product(xi, xj) + self.bond_linear(self.bond_product(both, sh, weights))

    def core(self, positions: torch.Tensor, plan: Mapping[str, Any], guess: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The numeric part of :meth:`forward` (tensor arithmetic only, shapes from the plan's tensors: it
        compiles with ``fullgraph=True`` and exports): positions ``(N, 3)``, the plan of :meth:`plan`, and the
        guess ``(B, n', n')`` when the model learns a difference to one. Returns the outputs of :meth:`forward`."""
        species, molecule, num_orbitals = plan["species"], plan["molecule"], plan["num_orbitals"]
        x = self.node_features(species, positions, molecule, plan["edges"])
        small = self.reduce(x)
        node_in = self.self_product(small, small) + self.self_linear(x)
        hamiltonian = assemble_planned(positions, molecule, plan["offset"], num_orbitals, plan["orbitals"].shape[0],
                                       plan["atoms"], plan["pairs"],
                                       lambda z, atoms: self.diagonal[str(z)](node_in.index_select(0, atoms)),
                                       lambda rows, cols: self._pair_features(small, positions, rows, cols),
                                       lambda za, zb, features: self.offdiagonal[pair_key(za, zb)](features))
        hamiltonian = add_guess(hamiltonian, {} if guess is None else {"guess": guess}, self.guess)
        out = {"hamiltonian": hamiltonian, "num_orbitals": num_orbitals}
        out.update(self.properties(x, species, positions, molecule, num_orbitals.shape[0]))
        return out

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``hamiltonian (B, n, n)`` (padded), ``num_orbitals (B,)``, ``energy (B,)`` Hartree,
        ``dipole (B, 3)`` and ``polarizability (B, 3, 3)`` atomic units: :meth:`core` of :meth:`plan`."""
        return self.core(batch["positions"], self.plan(batch), batch.get("guess"))
