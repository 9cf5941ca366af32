"""Errors of a trained potential on labelled structures, and a parity plot.

Metrics (all over the labels present): ``energy_mae_per_atom`` and ``energy_rmse_per_atom``
(meV/atom), ``energy_mae`` and ``energy_rmse`` (meV per structure: the error of a molecule's or
cell's total energy), ``force_mae`` and ``force_rmse`` (meV/Angstrom, per Cartesian component),
``stress_mae`` and ``stress_rmse`` (meV/Angstrom^3), with the counts ``structures`` and ``atoms``.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from equiscale.atomistic.data import AtomicDataset, make_loader
from equiscale.atomistic.model import EquivariantPotential
from equiscale.atomistic.structures import AtomicStructure

__all__ = ["predict_dataset", "error_metrics", "parity_plot", "evaluate_potential"]


def predict_dataset(model: EquivariantPotential, structures: Sequence[AtomicStructure], batch_size: int = 8) -> dict[str, np.ndarray]:
    """Predicted and reference energies per atom, forces and stresses, as float64 numpy arrays
    (``energy``/``energy_ref`` (S,) eV/atom, ``num_atoms`` (S,), ``forces``/``forces_ref`` (N, 3) eV/A,
    ``stress``/``stress_ref`` (S, 3, 3) eV/A^3)."""
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    loader = make_loader(AtomicDataset(structures, model.cutoff), batch_size, dtype=dtype)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("energy", "energy_ref", "num_atoms", "forces", "forces_ref", "stress",
                                                                "stress_ref")}
    model.eval()
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch, stress=True, create_graph=False)
        n = batch["num_atoms"].to(torch.float64)
        parts["energy"].append((out["energy"].detach().double() / n).cpu().numpy())
        parts["energy_ref"].append((batch["energy"].double() / n).cpu().numpy())
        parts["num_atoms"].append(n.cpu().numpy())
        for key in ("forces", "stress"):
            parts[key].append(out[key].detach().double().cpu().numpy())
            parts[f"{key}_ref"].append(batch[key].double().cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def error_metrics(predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """MAE/RMSE in meV units from :func:`predict_dataset`'s arrays (NaN references skipped)."""
    metrics: dict[str, float] = {}
    atoms = predictions["num_atoms"]
    columns = (("energy", "_per_atom", 1.0), ("energy", "", atoms), ("forces", "", 1.0), ("stress", "", 1.0))
    for key, suffix, scale in columns:  # energy per structure = energy per atom x atoms
        prediction, reference = predictions[key] * scale, predictions[f"{key}_ref"] * scale
        known = np.isfinite(reference)  # structures without a cell have no stress
        error = 1000 * (prediction[known] - reference[known])
        if error.size:
            name = "force" if key == "forces" else key
            metrics[f"{name}_mae{suffix}"] = float(np.abs(error).mean())
            metrics[f"{name}_rmse{suffix}"] = float(np.sqrt((error ** 2).mean()))
    metrics["structures"] = float(len(predictions["energy"]))
    metrics["atoms"] = float(len(predictions["forces"]))
    return metrics


def parity_plot(predictions: dict[str, np.ndarray], path: str | os.PathLike, title: str = "") -> None:
    """Energy-per-atom and force-component parity plots side by side, saved as PNG (folders created)."""
    from equiscale.plotting import pyplot, save_png

    figure, axes = pyplot().subplots(1, 2, figsize=(9, 4.2))
    for axis, key, label in ((axes[0], "energy", "energy (eV/atom)"), (axes[1], "forces", "force component (eV/A)")):
        reference, prediction = predictions[f"{key}_ref"].ravel(), predictions[key].ravel()
        known = np.isfinite(reference)
        reference, prediction = reference[known], prediction[known]
        if reference.size:
            low, high = min(reference.min(), prediction.min()), max(reference.max(), prediction.max())
            axis.plot([low, high], [low, high], color="0.6", lw=1)
            axis.scatter(reference, prediction, s=4, alpha=0.5)
            mae = 1000 * np.abs(prediction - reference).mean()
            unit = "meV/atom" if key == "energy" else "meV/A"
            axis.set_title(f"MAE {mae:.2f} {unit}")
        axis.set_xlabel(f"reference {label}")
        axis.set_ylabel(f"predicted {label}")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    save_png(figure, path, dpi=120)


def evaluate_potential(checkpoint: str | os.PathLike, data: str | os.PathLike, plot: str | os.PathLike | None = None,
                       batch_size: int = 8, dtype: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Load ``checkpoint``, predict every structure of ``data`` and return the error metrics;
    write the parity plot to ``plot`` when given."""
    from equiscale.atomistic.checkpoints import load_potential
    from equiscale.atomistic.structures import read_structures

    model = load_potential(checkpoint, device=device, dtype=dtype)
    structures = read_structures(data)
    predictions = predict_dataset(model, structures, batch_size)
    metrics = error_metrics(predictions)
    if plot is not None:
        parity_plot(predictions, plot, title=f"{os.path.basename(os.fspath(data))}: {len(structures)} structures")
    return metrics
