"""An ASE calculator for a trained :class:`EquivariantPotential`.

    atoms.calc = Calculator("runs/cu/best.pt", device="cpu", dtype="float64")
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Energies in eV, forces in eV/Angstrom, stress in eV/Angstrom^3 (ASE's Voigt order and sign). The
neighbour list is rebuilt by vesin on every call; torch's global default dtype is never changed.

Committees: given a run directory trained with ``--ensemble N`` (or a
:class:`~equiscale.uncertainty.Committee`), the results are the members' mean, and
``results["energy_std"]`` (eV, the spread of the total energy) and ``results["forces_std"]``
(``(N,)`` eV/Angstrom: per atom, one standard deviation per force component,
``sqrt(trace(C) / 3)`` of the covariance ``C`` of the members' force vectors) are added, each
multiplied by ``uncertainty_scale`` (a calibration factor, 1 by default).
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
        uncertainty_scale: committees: the factor applied to ``energy_std`` and ``forces_std``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energy_std", "forces_std"]

    def __init__(self, checkpoint: str | os.PathLike | EquivariantPotential | Any, device: str = "cpu",
                 dtype: str = "float32", uncertainty_scale: float = 1.0, **kwargs: Any) -> None:
        from equiscale.uncertainty import Committee, is_committee

        super().__init__(**kwargs)
        self.dtype = resolve_dtype(dtype)
        self.device = torch.device(device)
        self.uncertainty_scale = float(uncertainty_scale)
        if isinstance(checkpoint, (EquivariantPotential, Committee)):
            self.model = checkpoint.to(device=self.device, dtype=self.dtype).eval()
        elif is_committee(checkpoint):
            from equiscale.atomistic.evaluate import load_potential_committee

            self.model = load_potential_committee(checkpoint, device=str(self.device), dtype=dtype)
        else:
            from equiscale.atomistic.checkpoints import load_potential

            self.model = load_potential(checkpoint, device=self.device, dtype=self.dtype)
        self.committee = isinstance(self.model, Committee)
        if not self.committee:  # the spreads exist only for committees
            self.implemented_properties = ["energy", "free_energy", "forces", "stress"]
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def calculate(self, atoms: Any = None, properties: Sequence[str] = ("energy",), system_changes: Sequence[str] = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        structure = AtomicStructure.from_atoms(self.atoms, labels=False)
        batch = collate([structure_graph(structure, self.model.cutoff)], self.dtype)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        want_stress = "stress" in properties and bool(structure.pbc.all())
        if self.committee:
            from equiscale.atomistic.evaluate import committee_forward

            out = committee_forward(self.model, batch, stress=want_stress)
        else:
            out = self.model(batch, forces=True, stress=want_stress, create_graph=False)
        energy = float(out["energy"].detach().double().cpu())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].detach().double().cpu().numpy(),
        }
        if self.committee:
            self.results["energy_std"] = self.uncertainty_scale * float(out["energy_std"].double().cpu())
            self.results["forces_std"] = self.uncertainty_scale * out["forces_std"].double().cpu().numpy()
        if want_stress:
            s = out["stress"][0].detach().double().cpu().numpy()
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic cell in all three directions")
