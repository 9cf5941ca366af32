"""An ASE calculator for a trained :class:`EquivariantPotential`.

    atoms.calc = Calculator("runs/cu/best.pt", device="cpu", dtype="float64")
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Energies in eV, forces in eV/Angstrom, stress in eV/Angstrom^3 (ASE's Voigt order and sign). The
neighbour list is rebuilt by vesin on every call; torch's global default dtype is never changed.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
from ase.calculators.calculator import Calculator as _AseCalculator, all_changes

from equiscale.atomistic.data import collate, resolve_dtype, structure_graph
from equiscale.atomistic.model import EquivariantPotential
from equiscale.atomistic.structures import AtomicStructure

__all__ = ["Calculator"]


class Calculator(_AseCalculator):
    """ASE calculator of energy, free energy, forces and stress from a checkpoint or a model.

    Args:
        checkpoint: path of ``best.pt``/``last.pt`` written by ``equiscale train potential``, or an
            :class:`EquivariantPotential`.
        device: ``"cpu"``, ``"cuda"``, ...
        dtype: ``"float32"`` (default) or ``"float64"``: the model is evaluated in this precision.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, checkpoint: str | os.PathLike | EquivariantPotential, device: str = "cpu", dtype: str = "float32",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dtype = resolve_dtype(dtype)
        self.device = torch.device(device)
        if isinstance(checkpoint, EquivariantPotential):
            self.model = checkpoint.to(device=self.device, dtype=self.dtype).eval()
        else:
            from equiscale.atomistic.checkpoints import load_potential

            self.model = load_potential(checkpoint, device=self.device, dtype=self.dtype)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def calculate(self, atoms: Any = None, properties: Sequence[str] = ("energy",), system_changes: Sequence[str] = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        structure = AtomicStructure.from_atoms(self.atoms, labels=False)
        batch = collate([structure_graph(structure, self.model.cutoff)], self.dtype)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        want_stress = "stress" in properties and bool(structure.pbc.all())
        out = self.model(batch, forces=True, stress=want_stress, create_graph=False)
        energy = float(out["energy"].detach().double().cpu())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].detach().double().cpu().numpy(),
        }
        if want_stress:
            s = out["stress"][0].detach().double().cpu().numpy()
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic cell in all three directions")
