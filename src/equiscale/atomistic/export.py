"""``equiscale export potential``: a trained potential as a file plain PyTorch (or C++) runs.

The exported function takes one structure and its neighbour list, computed by the caller (vesin,
ASE, LAMMPS or any list with the convention below), and returns energy, forces and stress, the
forces and stress by autograd inside the exported function:

    energy, forces, stress = package(positions, numbers, cell, edge_index, shifts)

====================  ==============  =================================================================
input                 shape, dtype    meaning
====================  ==============  =================================================================
``positions``         (N, 3) float    Angstrom
``numbers``           (N,) int64      atomic numbers, each one of the metadata's ``elements``
``cell``              (3, 3) float    lattice vectors as rows (zeros for a molecule)
``edge_index``        (2, E) int64    full neighbour list ``[source j, target i]`` within ``cutoff``
``shifts``            (E, 3) float    integer cell shifts: ``r_e = positions[j] - positions[i] + shifts[e] @ cell``
====================  ==============  =================================================================

Outputs: ``energy`` () eV, ``forces`` (N, 3) eV/Angstrom, ``stress`` (3, 3) eV/Angstrom^3 (ASE's
sign; zero when the cell has no volume). ``float`` is the file's dtype (metadata ``dtype``). ASE's
``neighbor_list("ijS", atoms, cutoff)`` gives ``i, j, S`` with exactly this convention:
``edge_index = stack([j, i])``, ``shifts = S``. N >= 2 atoms and E >= 2 edges (sizes are dynamic).

This module is light (no torch at import): the command line imports it to build ``--help``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from equiscale.deploy_settings import ExportSettings
from equiscale.settings import setting

__all__ = ["ExportPotential", "export_potential", "potential_for_export"]

INPUTS = "positions (N,3) float A; numbers (N,) int64; cell (3,3) float rows; edge_index (2,E) int64 [source j, " \
         "target i]; shifts (E,3) float: r = positions[j] - positions[i] + shifts @ cell"
OUTPUTS = "energy () eV; forces (N,3) eV/A; stress (3,3) eV/A^3 (ASE sign, zero without a cell volume)"


@dataclass
class ExportPotential(ExportSettings):
    """``equiscale export potential``: an AOTInductor package (or exported program) of a trained potential."""

    ema: bool = setting(True, help="the moving average of the weights when the run kept one (--no-ema: the "
                        "last trained weights)")


def potential_for_export(model: Any) -> Any:
    """``model`` (an :class:`~equiscale.atomistic.model.EquivariantPotential`, eval mode) wrapped as
    ``(positions, numbers, cell, edge_index, shifts) -> (energy, forces, stress)`` (module docstring)."""
    import torch

    class PotentialFunction(torch.nn.Module):
        """The exported function; the isolated-atom readouts are frozen into a buffer."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            device = model.embedding.weight.device
            with torch.no_grad():
                self.register_buffer("isolated", model.isolated_features(device).detach().clone())

        def forward(self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor,
                    edge_index: torch.Tensor, shifts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            species = self.model.species_of.index_select(0, numbers)
            source, target = edge_index[0], edge_index[1]
            with torch.enable_grad():
                vectors = positions.index_select(0, source) - positions.index_select(0, target) + shifts @ cell
                vectors = vectors.detach().requires_grad_(True)
                energy = self.model._core(species, vectors, edge_index, None, self.isolated).sum()
                (gradient,) = torch.autograd.grad(energy, vectors)
            n = positions.shape[0]
            forces = gradient.new_zeros(n, 3).index_add(0, target, gradient) - \
                gradient.new_zeros(n, 3).index_add(0, source, gradient)
            virial = (vectors.detach().unsqueeze(-1) * gradient.unsqueeze(-2)).sum(0)
            virial = 0.5 * (virial + virial.transpose(0, 1))
            volume = torch.linalg.cross(cell[0], cell[1]).dot(cell[2]).abs()  # det: no AOTInductor C shim
            has_volume = volume > 1e-9
            stress = torch.where(has_volume, virial / torch.where(has_volume, volume, 1.0), 0.0)
            return energy.detach(), forces, stress

    return PotentialFunction().eval()


def example_inputs(model: Any, dtype: Any) -> tuple:
    """A 5-atom cluster with its full neighbour list (20 edges): sizes unlike any of the model's."""
    import torch

    generator = torch.Generator().manual_seed(0)
    n = 5
    positions = (torch.rand(n, 3, generator=generator, dtype=torch.float64) * 0.5 * model.cutoff / 3 ** 0.5).to(dtype)
    numbers = torch.tensor([model.elements[k % len(model.elements)] for k in range(n)], dtype=torch.int64)
    pairs = torch.tensor([(j, i) for i in range(n) for j in range(n) if i != j], dtype=torch.int64).T.contiguous()
    shifts = torch.zeros(pairs.shape[1], 3, dtype=dtype)
    return positions, numbers, torch.zeros(3, 3, dtype=dtype), pairs, shifts


def export_potential(settings: ExportPotential) -> int:
    """Run ``equiscale export potential``: load, wrap, export, write; prints what was written."""
    import torch
    from torch.export import Dim

    from equiscale import __version__, deploy
    from equiscale.atomistic.checkpoints import load_potential
    from equiscale.check import checkpoint_file

    file = checkpoint_file(settings.checkpoint)
    dtype = getattr(torch, settings.dtype)
    model = load_potential(file, device=settings.device, dtype=dtype, ema=settings.ema)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    function = potential_for_export(model)
    example = tuple(t.to(settings.device) for t in example_inputs(model, dtype))
    atoms, edges = Dim("num_atoms", min=2), Dim("num_edges", min=2)
    dynamic = ({0: atoms}, {0: atoms}, None, {1: edges}, {0: edges})
    program = deploy.export_program(function, example, dynamic, differentiates=True)
    metadata = {"kind": "potential", "cutoff": model.cutoff, "elements": list(model.elements),
                "dtype": settings.dtype, "device": settings.device, "inputs": INPUTS, "outputs": OUTPUTS,
                "source": str(file), "equiscale_version": __version__}
    out = deploy.save_program(program, settings.out, settings.format, metadata)
    print(f"wrote {out} ({settings.format}, {settings.dtype}, cutoff {model.cutoff:g} A, elements "
          f"{', '.join(str(z) for z in model.elements)})")
    return 0
