"""The training loss of a potential and the usual error metrics.

Loss = ``w_E * MSE(E / N)`` (eV/atom) ``+ w_F * MSE(F)`` (eV/Angstrom, per component)
``+ w_S * MSE(stress * V / N)`` (virial per atom, eV), each over the structures or atoms whose
label is known (NaN marks an unknown label). Metrics are in meV: ``energy_mae_per_atom`` (meV/atom)
and ``energy_mae`` (meV per structure, the error of a molecule's total energy), ``force_mae`` and
``force_rmse`` per component (meV/Angstrom), ``stress_mae`` (meV/Angstrom^3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LossWeights", "potential_loss"]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the energy, force and stress terms (non-negative, not all zero)."""

    energy: float = 1.0
    forces: float = 1.0
    stress: float = 0.0

    def __post_init__(self) -> None:
        values = (self.energy, self.forces, self.stress)
        if min(values) < 0 or max(values) <= 0:
            raise ValueError(f"loss weights must be >= 0 and not all zero, got energy={self.energy}, forces={self.forces}, stress={self.stress}")


def _masked(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    known = torch.isfinite(target)
    return prediction[known], target[known]


def potential_loss(prediction: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """``(loss, metrics)`` of a model output against the batch's labels (see the module docstring)."""
    num_atoms = batch["num_atoms"].to(prediction["energy"].dtype)
    loss = prediction["energy"].new_zeros(())
    metrics: dict[str, float] = {}
    energy, target = _masked(prediction["energy"] / num_atoms, batch["energy"] / num_atoms)
    if energy.numel():
        error = energy - target
        loss = loss + weights.energy * error.pow(2).mean()
        metrics["energy_mae_per_atom"] = 1000 * float(error.detach().abs().mean())
        total, total_target = _masked(prediction["energy"].detach(), batch["energy"])
        metrics["energy_mae"] = 1000 * float((total - total_target).abs().mean())
    if "forces" in prediction and weights.forces > 0:
        forces, target = _masked(prediction["forces"], batch["forces"])
        if forces.numel():
            error = forces - target
            loss = loss + weights.forces * error.pow(2).mean()
            metrics["force_mae"] = 1000 * float(error.detach().abs().mean())
            metrics["force_rmse"] = 1000 * float(error.detach().pow(2).mean().sqrt())
    if "stress" in prediction and weights.stress > 0:
        volume = torch.linalg.det(batch["cell"]).abs()
        per_atom = (volume / num_atoms)[:, None, None]
        stress, target = _masked(prediction["stress"] * per_atom, batch["stress"] * per_atom)
        if stress.numel():
            loss = loss + weights.stress * (stress - target).pow(2).mean()
            raw, raw_target = _masked(prediction["stress"], batch["stress"])
            metrics["stress_mae"] = 1000 * float((raw - raw_target).detach().abs().mean())
    return loss, metrics
