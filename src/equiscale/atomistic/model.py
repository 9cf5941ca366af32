"""``EquivariantPotential``: an E(3)-equivariant interatomic potential in the style of NequIP.

Atoms are nodes whose features are irreps ``C x (0e + 1o + 2e + ...)`` (``C`` channels, natural
parity ``(-1)^l`` up to ``lmax``). Each interaction layer is the shared message-passing block of
:mod:`equiscale.nn.points` (channelwise tensor product of neighbour features with the spherical
harmonics of the bond direction, weighted by a radial MLP of the bond length under a smooth
cutoff), plus a linear self-connection and a gate nonlinearity. The last layer only produces
scalars, which a small MLP turns into atomic energies:

    E = sum_i [ scale * (u(h_i) - u(h_iso(Z_i))) + e_ref(Z_i) ]

``u`` is the readout, ``h_iso(Z)`` the final features of an isolated atom of element Z (so an atom
with no neighbour inside the cutoff has exactly its reference energy ``e_ref``), ``scale`` the
force RMS of the training data. Forces are ``-dE/dr`` and the stress the strain derivative
``(1/V) dE/d(strain)`` (ASE's sign), both by autograd through the bond vectors.

Because the features are irreps of O(3) and only the scalar channel is read out, the energy is
invariant under rotations, reflections, translations, permutations and the choice of periodic
image; forces rotate as vectors and the stress as a rank-2 tensor.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from equiscale import o3
from equiscale.nn.points import Gate, MessagePassing, scatter_sum

__all__ = ["EquivariantPotential", "element_symbol", "bond_pairs"]

_PAIRS_FROM = 256  # bonds from which grouping j -> i with i -> j pays for its sort


def _traced(t: torch.Tensor) -> bool:
    """Under ``torch.compile``/``torch.export`` tracing or on fake tensors (``make_fx``)."""
    from torch._subclasses.fake_tensor import FakeTensor

    return torch.compiler.is_compiling() or isinstance(t, FakeTensor)


def element_symbol(z: int) -> str:
    """Chemical symbol of atomic number ``z`` (``"Z=z"`` if unknown)."""
    try:
        from ase.data import chemical_symbols

        return chemical_symbols[int(z)]
    except (ImportError, IndexError):
        return f"Z={int(z)}"


def _linear(irreps_in: o3.Irreps, irreps_out: o3.Irreps) -> nn.Module:
    from equiscale.o3._linear import Linear

    return Linear(irreps_in, irreps_out)


def bond_pairs(edge_index: torch.Tensor, shifts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Group the edges of a full neighbour list by bond: ``j -> i`` (shift S) and ``i -> j`` (shift
    -S) are the same bond with the same length. Returns ``(representative, inverse)``: one edge per
    bond ``(P,)`` and each edge's bond ``(E,)``, so ``lengths[representative][inverse]`` equals
    ``lengths`` and radial networks need to run on P ~ E/2 bonds only."""
    source, target = edge_index
    first, second = torch.minimum(source, target), torch.maximum(source, target)
    integer_shifts = shifts.round().long()
    flip = (source > target).unsqueeze(-1)  # orient every shift from the lower to the higher index
    oriented = torch.where(flip, -integer_shifts, integer_shifts)
    same = source == target  # an atom and its own image: S and -S are one bond
    for axis in range(3):  # canonical sign for self-image bonds: first non-zero component positive
        undecided = same & (oriented[:, :axis] == 0).all(-1) if axis else same
        negative = undecided & (oriented[:, axis] < 0)
        oriented = torch.where(negative.unsqueeze(-1), -oriented, oriented)
    low = oriented.min() if oriented.numel() else torch.zeros((), dtype=torch.long)
    span = int((oriented.max() - low).item()) + 1 if oriented.numel() else 1
    code = oriented - low
    key = ((first * (int(second.max().item()) + 1 if second.numel() else 1) + second) * span + code[:, 0]) * span + code[:, 1]
    key = key * span + code[:, 2]
    _, inverse = torch.unique(key, return_inverse=True)
    representative = torch.empty(int(inverse.max().item()) + 1 if inverse.numel() else 0, dtype=torch.long, device=key.device)
    representative.scatter_(0, inverse, torch.arange(key.shape[0], device=key.device))
    return representative, inverse


class _Interaction(nn.Module):
    """One layer: ``x -> gate(conv(pre(x)) + self_connection(x))`` with a residual where it fits."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, options: dict[str, Any]) -> None:
        super().__init__()
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
        gates = o3.Irreps([(gated.num_irreps, "0e")]) if gated.num_irreps else o3.Irreps([])
        silu, sigmoid = torch.nn.functional.silu, torch.sigmoid
        self.gate = Gate(scalars, [silu] * len(scalars), gates, [sigmoid] * len(gates), gated)
        self.irreps_in, self.irreps_out = irreps_in, self.gate.irreps_out
        self.pre = _linear(irreps_in, irreps_in) if irreps_in.lmax > 0 else nn.Identity()
        self.conv = MessagePassing(irreps_in, self.gate.irreps_in, irreps_sh, **options)
        self.self_connection = _linear(irreps_in, self.gate.irreps_in)
        self.residual = irreps_in == self.irreps_out
        # the last layer (scalars only) keeps the scalar channels of its input
        self.scalar_residual = not self.residual and len(self.irreps_out) == 1 and irreps_in[0] == self.irreps_out[0]
        self._scalar_dim = self.irreps_out.dim

    def forward(self, x: torch.Tensor, sh: torch.Tensor | None, lengths: torch.Tensor | None, edge_index: torch.Tensor | None,
                pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        update = self.self_connection(x)
        if edge_index is not None:  # None: isolated atoms, whose messages are zero
            weights = self.conv.edge_weights(lengths, pairs)  # the radial MLP once per bond (pairs)
            update = update + self.conv(self.pre(x), edge_index=edge_index, edge_attr=sh, edge_weights=weights)
        out = self.gate(update)
        if self.residual:
            return x + out
        if self.scalar_residual:
            return x[:, : self._scalar_dim] + out
        return out


class EquivariantPotential(nn.Module):
    """Energy, forces and stress of atomic structures (eV, eV/Angstrom, eV/Angstrom^3).

    Args:
        elements: atomic numbers the model knows (others are refused with a ValueError).
        lmax: highest degree of the features and bond spherical harmonics.
        channels: multiplicity ``C`` of every irrep of the hidden features.
        layers: number of interaction layers (at least 1).
        cutoff: interaction radius, Angstrom.
        num_radial_basis: radial basis functions per bond.
        radial_basis: ``"bessel"`` (trainable frequencies) or ``"gaussian"``.
        radial_hidden: hidden width of each layer's radial MLP.
        polynomial_p: order of the polynomial cutoff envelope.
        avg_num_neighbors: typical neighbour count (from the data), normalises the messages.
        reference_energies: ``{Z: e_ref}`` in eV (default 0): the energy of an isolated atom.
        energy_scale: eV per unit of readout (the force RMS of the data is a good choice).
        readout_hidden: hidden width of the scalar readout MLP.

    The module's parameters are float32 unless converted (``.double()`` for float64); a batch's
    floating tensors must have the parameters' dtype. ``config`` holds the arguments, so
    ``EquivariantPotential(**model.config)`` rebuilds the architecture.
    """

    def __init__(self, elements: Sequence[int], lmax: int = 2, channels: int = 32, layers: int = 2, cutoff: float = 5.0,
                 num_radial_basis: int = 8, radial_basis: str = "bessel", radial_hidden: int = 64, polynomial_p: float = 6.0,
                 avg_num_neighbors: float = 1.0, reference_energies: dict[int, float] | None = None,
                 energy_scale: float = 1.0, readout_hidden: int = 16) -> None:
        super().__init__()
        elements = sorted({int(z) for z in elements})
        if not elements or elements[0] < 1 or elements[-1] > 118:
            raise ValueError(f"elements must be a non-empty list of atomic numbers in 1..118, got {elements}")
        for name, value, low in (("lmax", lmax, 0), ("channels", channels, 1), ("layers", layers, 1),
                                 ("num_radial_basis", num_radial_basis, 1), ("radial_hidden", radial_hidden, 1),
                                 ("readout_hidden", readout_hidden, 1)):
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not float(cutoff) > 0 or not float(energy_scale) > 0:
            raise ValueError(f"cutoff and energy_scale must be positive, got {cutoff!r} and {energy_scale!r}")
        references = {int(z): float(e) for z, e in (reference_energies or {}).items()}
        unknown = set(references) - set(elements)
        if unknown:
            raise ValueError(f"reference energies given for elements not in the model: {sorted(unknown)}")
        self.config: dict[str, Any] = dict(
            elements=elements, lmax=int(lmax), channels=int(channels), layers=int(layers), cutoff=float(cutoff),
            num_radial_basis=int(num_radial_basis), radial_basis=radial_basis, radial_hidden=int(radial_hidden),
            polynomial_p=float(polynomial_p), avg_num_neighbors=float(avg_num_neighbors),
            reference_energies={z: references.get(z, 0.0) for z in elements}, energy_scale=float(energy_scale),
            readout_hidden=int(readout_hidden),
        )
        self.elements, self.cutoff = elements, float(cutoff)
        table = torch.full((119,), -1, dtype=torch.long)
        table[torch.tensor(elements)] = torch.arange(len(elements))
        self.register_buffer("species_of", table, persistent=False)
        self.register_buffer("reference", torch.tensor([references.get(z, 0.0) for z in elements], dtype=torch.float64))
        self.energy_scale = float(energy_scale)

        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        hidden = o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])
        options = dict(num_radial_basis=num_radial_basis, radial_hidden=(radial_hidden,), avg_num_neighbors=avg_num_neighbors,
                       cutoff=cutoff, radial_basis=radial_basis, polynomial_p=polynomial_p)
        self.embedding = nn.Embedding(len(elements), channels)
        irreps = o3.Irreps([(channels, (0, 1))])
        self.interactions = nn.ModuleList()
        for k in range(layers):
            out = o3.Irreps([(channels, (0, 1))]) if k == layers - 1 else hidden
            self.interactions.append(_Interaction(irreps, out, self.irreps_sh, options))
            irreps = self.interactions[-1].irreps_out
        self.readout = nn.Sequential(nn.Linear(channels, readout_hidden), nn.SiLU(), nn.Linear(readout_hidden, 1))
        self._compiled_core = None
        self._parameter_list: tuple[nn.Parameter, ...] | None = None
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_parameter_list", None))  # assign=True

    def _apply(self, fn, recurse: bool = True):  # .to(), .float(), .double(), ... may replace parameters
        self._parameter_list = None
        return super()._apply(fn, recurse)

    def __setattr__(self, name: str, value: Any) -> None:  # a module or parameter assigned anew
        if isinstance(value, nn.Module | nn.Parameter) and "_parameter_list" in self.__dict__:
            self.__dict__["_parameter_list"] = None
        super().__setattr__(name, value)

    # --- inputs -------------------------------------------------------------------------------
    def species(self, numbers: torch.Tensor) -> torch.Tensor:
        """Species indices ``(N,)`` of atomic numbers; ValueError naming any unknown element."""
        out_of_range = (numbers < 1) | (numbers > 118)
        species = self.species_of[numbers.clamp(0, 118)]
        if _traced(numbers):  # a compiled or exported graph cannot raise on values: the caller checks
            return species
        bad = out_of_range | (species < 0)
        if bool(bad.any()):
            names = sorted({element_symbol(z) for z in numbers[bad].tolist()})
            known = ", ".join(element_symbol(z) for z in self.elements)
            raise ValueError(f"element(s) {', '.join(names)} not known to this model (trained on {known})")
        return species

    @staticmethod
    def edge_vectors(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Bond vectors ``(E, 3)``: ``positions[source] - positions[target] + shifts @ cell``."""
        source, target = batch["edge_index"]
        vectors = batch["positions"].index_select(0, source) - batch["positions"].index_select(0, target)
        if batch["shifts"].shape[0]:
            cell = batch["cell"].index_select(0, batch["batch"].index_select(0, target))
            vectors = vectors + torch.einsum("ek,ekx->ex", batch["shifts"], cell)
        return vectors

    def _check(self, batch: dict[str, torch.Tensor]) -> None:
        positions = batch["positions"]
        if positions.shape[0] == 0:
            raise ValueError("empty structure: the batch holds no atoms")
        if not _traced(positions) and not bool(torch.isfinite(positions).all()):
            raise ValueError("positions hold NaN or infinite values")
        dtype = self.embedding.weight.dtype
        if positions.dtype != dtype:
            raise ValueError(f"the batch is {positions.dtype} but the model's parameters are {dtype}: convert one of them")

    # --- the model ----------------------------------------------------------------------------
    def _features(self, species: torch.Tensor, sh: torch.Tensor | None, lengths: torch.Tensor | None,
                  edge_index: torch.Tensor | None, pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.embedding(species)
        for layer in self.interactions:
            x = layer(x, sh, lengths, edge_index, pairs)
        return self.readout(x).squeeze(-1)

    def isolated_features(self, device: torch.device) -> torch.Tensor:
        """Readout ``u(h_iso(Z))`` of an isolated atom of each element ``(num_elements,)``.

        Computed from the parameters; when no gradient to them is wanted (inference, or
        parameters frozen as in the ASE calculator) the result is cached until a parameter
        changes (in place, by ``load_state_dict``, or replaced), its dtype or its device does.
        (A parameter object swapped by hand inside a submodule is not noticed: set
        ``_parameter_list = None`` after doing that.)
        """
        if torch.compiler.is_compiling():  # traced: the cache's key compares values; compute in the graph
            return self._features(torch.arange(len(self.elements), device=device), None, None, None)
        parameters = self._parameter_list
        if parameters is None:  # listed once (walking the modules costs ~50 us); _apply and __setattr__ reset it
            parameters = self._parameter_list = tuple(self.parameters())
        needs_graph = torch.is_grad_enabled() and any(p.requires_grad for p in parameters)
        key = (device, tuple((id(p), p._version, p.dtype, p.device) for p in parameters))
        cached = getattr(self, "_isolated_cache", None)
        if not needs_graph and cached is not None and cached[0] == key:
            return cached[1]
        features = self._features(torch.arange(len(self.elements), device=device), None, None, None)
        if needs_graph:
            self._isolated_cache = None
            return features
        self._isolated_cache = (key, features.detach())
        return self._isolated_cache[1]

    def atomic_energies(self, batch: dict[str, torch.Tensor], vectors: torch.Tensor, compiled: bool = False) -> torch.Tensor:
        """Per-atom energies ``(N,)`` in eV from the batch and its bond vectors ``(E, 3)``.

        ``compiled`` runs the per-structure work through the ``torch.compile``-d core set up by
        :meth:`compile_inference` (when there is one).
        """
        species = self.species(batch["numbers"])
        edge_index = batch["edge_index"]
        # bonds j -> i and i -> j share the radial MLP row; for small graphs the grouping costs more than it saves
        # (data-dependent sizes: not when traced)
        pairs = bond_pairs(edge_index, batch["shifts"]) if edge_index.shape[1] >= _PAIRS_FROM and not _traced(edge_index) \
            else None
        isolated = self.isolated_features(species.device)
        core = self._compiled_core if compiled and self._compiled_core is not None else self._core
        return core(species, vectors, edge_index, pairs, isolated)

    def _core(self, species: torch.Tensor, vectors: torch.Tensor, edge_index: torch.Tensor,
              pairs: tuple[torch.Tensor, torch.Tensor] | None, isolated: torch.Tensor) -> torch.Tensor:
        """Atomic energies from species ``(N,)``, bond vectors ``(E, 3)``, ``edge_index (2, E)``,
        optional bond pairs and the isolated-atom readouts ``(num_elements,)`` (no data-dependent
        control flow: this is what :meth:`compile_inference` compiles)."""
        lengths = vectors.norm(dim=-1)
        sh = o3.spherical_harmonics(self.irreps_sh, vectors, normalize=True, normalization="component")
        raw = self._features(species, sh, lengths, edge_index, pairs)
        reference = self.reference.to(raw.dtype)
        return self.energy_scale * (raw - isolated.index_select(0, species)) + reference.index_select(0, species)

    def compile_inference(self, enabled: bool = True) -> "EquivariantPotential":
        """Run energy + forces (and stress) through ``torch.compile`` when no graph is kept.

        For small molecules, where per-operation overhead and not arithmetic decides, this fuses
        the model's many small operations (and their backward, for the forces) into a few
        compiled kernels. The first call compiles (tens of seconds); shapes are dynamic, so a
        changing number of atoms or bonds does not recompile. Calls with ``create_graph=True``
        (training on forces needs the double backward, which compiled graphs do not provide)
        keep the eager path. Returns ``self``.
        """
        if not enabled:
            self._compiled_core = None
            return self
        import torch._dynamo

        # module floats (cutoff, envelope order) stay constants rather than symbolic inputs
        torch._dynamo.config.specialize_float = True
        self._compiled_core = torch.compile(self._core, dynamic=True)
        return self

    def forward(self, batch: dict[str, torch.Tensor], forces: bool = True, stress: bool = False,
                create_graph: bool | None = None) -> dict[str, torch.Tensor]:
        """Predict ``energy (B,)`` and ``atomic_energies (N,)``; with ``forces``, ``forces (N, 3)``;
        with ``stress``, ``stress (B, 3, 3)`` (zero for structures without a cell volume).

        ``create_graph`` (default: ``self.training``) keeps the graph of forces and stress so that a
        loss on them can be differentiated to the parameters.
        """
        self._check(batch)
        create_graph = self.training if create_graph is None else create_graph
        vectors = self.edge_vectors(batch)
        need_grad = forces or stress
        if need_grad and not vectors.requires_grad:
            vectors.requires_grad_(True)
        num_structures = batch["num_atoms"].shape[0]
        with torch.enable_grad() if need_grad else torch.no_grad():
            atomic = self.atomic_energies(batch, vectors, compiled=not create_graph)
            energy = scatter_sum(atomic, batch["batch"], num_structures)
        out = {"energy": energy, "atomic_energies": atomic}
        if not need_grad:
            return out
        if vectors.shape[0] == 0:
            gradient = torch.zeros_like(vectors)
        else:
            (gradient,) = torch.autograd.grad(energy.sum(), vectors, create_graph=create_graph)
        source, target = batch["edge_index"]
        if forces:
            n = batch["positions"].shape[0]
            out["forces"] = scatter_sum(gradient, target, n) - scatter_sum(gradient, source, n)
        if stress:
            edge_structure = batch["batch"].index_select(0, target)
            virial = scatter_sum(vectors.unsqueeze(-1) * gradient.unsqueeze(-2), edge_structure, num_structures)
            virial = 0.5 * (virial + virial.transpose(-1, -2))
            volume = torch.linalg.det(batch["cell"]).abs()
            has_volume = volume > 1e-9
            out["stress"] = torch.where(has_volume[:, None, None], virial / torch.where(has_volume, volume, 1.0)[:, None, None], 0.0)
        return out
