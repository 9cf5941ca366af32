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


# --- committees (equiscale.uncertainty): mean prediction, spread, calibration ---------------------------------
def load_potential_committee(path: str | os.PathLike, device: str = "cpu", dtype: str | None = None) -> Any:
    """The :class:`~equiscale.uncertainty.Committee` of potentials trained into ``path`` with ``--ensemble N``
    (each member's ``best.pt``, in eval mode)."""
    from pathlib import Path

    from equiscale.atomistic.checkpoints import load_potential
    from equiscale.check import checkpoint_file
    from equiscale.uncertainty import load_committee

    def member(folder: Path) -> EquivariantPotential:
        return load_potential(checkpoint_file(folder), device=device, dtype=dtype)

    return load_committee(path, member).eval()


def committee_forward(committee: Any, batch: dict[str, torch.Tensor], stress: bool = False) -> dict[str, torch.Tensor]:
    """The committee's mean ``energy (B,)``, ``forces (N, 3)`` (and ``stress (B, 3, 3)``) with their spread.

    Spreads are sample standard deviations over the members: ``energy_std (B,)`` eV of each
    structure's total energy, and ``forces_std (N,)`` eV/Angstrom per atom, ``sqrt(trace(C) / 3)`` of
    the covariance ``C`` of that atom's force vectors (one standard deviation per component,
    invariant under rotations and reflections), ``stress_std (B,)`` the same for the stress tensor.
    """
    outputs = [m(batch, forces=True, stress=stress, create_graph=False) for m in committee.members]
    result: dict[str, torch.Tensor] = {}
    for key in ("energy", "forces") + (("stress",) if stress else ()):
        stacked = torch.stack([o[key].detach() for o in outputs])
        result[key] = stacked.mean(0)
        deviation = stacked - result[key]
        variance = deviation.square().sum(0) / max(1, len(outputs) - 1)
        if key == "energy":
            result["energy_std"] = variance.sqrt()
        else:  # mean variance over the components of each atom's vector / each structure's tensor
            result[f"{key}_std"] = variance.flatten(1).mean(1).sqrt()
    return result


def predict_committee(committee: Any, structures: Sequence[AtomicStructure], batch_size: int = 8) -> dict[str, np.ndarray]:
    """:func:`predict_dataset`'s arrays for the committee's mean, plus ``energy_std`` (S,) eV/atom and
    ``forces_std`` (N,) eV/Angstrom (see :func:`committee_forward`)."""
    first = committee.members[0]
    dtype, device = next(first.parameters()).dtype, next(first.parameters()).device
    loader = make_loader(AtomicDataset(structures, first.cutoff), batch_size, dtype=dtype)
    keys = ("energy", "energy_ref", "num_atoms", "forces", "forces_ref", "stress", "stress_ref", "energy_std", "forces_std")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = committee_forward(committee, batch, stress=True)
        n = batch["num_atoms"].to(torch.float64)
        values = {"energy": out["energy"].double() / n, "energy_ref": batch["energy"].double() / n, "num_atoms": n,
                  "forces": out["forces"], "forces_ref": batch["forces"], "stress": out["stress"],
                  "stress_ref": batch["stress"], "energy_std": out["energy_std"].double() / n,
                  "forces_std": out["forces_std"]}
        for key, value in values.items():
            parts[key].append(value.detach().double().cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def uncertainty_metrics(predictions: dict[str, np.ndarray], force_scale: float | None = None,
                        energy_scale: float | None = None) -> dict[str, Any]:
    """Errors and calibration of a committee's predictions (:func:`predict_committee`).

    With ``force_scale``/``energy_scale`` (fitted elsewhere, e.g. in distribution) the spread is
    scaled by them; without, they are fitted here. Returns the :func:`error_metrics` plus
    ``force_scale``, ``force_spearman``, ``force_nll``, ``force_sigma_rms`` (meV/A, calibrated
    spread), ``force_calibration`` (the curve), and the same for ``energy`` (per atom, meV/atom).
    """
    from equiscale.uncertainty.calibration import calibrate, calibration_curve, gaussian_nll, spearman

    metrics: dict[str, Any] = error_metrics(predictions)
    for name, key, given in (("force", "forces", force_scale), ("energy", "energy", energy_scale)):
        known = np.isfinite(predictions[f"{key}_ref"]).reshape(len(predictions[f"{key}_std"]), -1).all(1)
        errors = (predictions[key] - predictions[f"{key}_ref"])[known]
        sigma = np.maximum(predictions[f"{key}_std"][known], 1e-12)
        if len(sigma) == 0:
            continue
        fitted = calibrate(errors, sigma)
        scale = fitted.scale if given is None else float(given)
        metrics[f"{name}_scale"] = scale
        metrics[f"{name}_spearman"] = spearman(errors, sigma)
        metrics[f"{name}_nll"] = gaussian_nll(errors, sigma, scale)
        metrics[f"{name}_sigma_rms"] = 1000 * scale * float(np.sqrt((sigma ** 2).mean()))
        metrics[f"{name}_error_rms"] = 1000 * fitted.rms_error
        curve = calibration_curve(1000 * errors, 1000 * sigma, scale)
        metrics[f"{name}_calibration"] = {k: [float(x) for x in v] for k, v in curve.items()}
    return metrics


def shifted_sets(structures: Sequence[AtomicStructure], shifts: Sequence[str], frames: int = 8,
                 hot_temperature: float = 1600.0, strain: float = 0.03, seed: int = 0) -> list[tuple[str, list[AtomicStructure]]]:
    """The built-in out-of-distribution sets of EMT data, labelled by EMT: ``"hot"`` (Langevin MD at
    ``hot_temperature`` from the first structure, after 10 warm-up frames) and ``"strain"`` (the
    first ``frames`` structures with cells scaled by ``1 + strain`` and ``1 - strain``).

    Raises:
        ValueError: the structures are not of one element EMT has parameters for.
    """
    from ase.calculators.emt import EMT
    from ase.data import chemical_symbols

    from equiscale.atomistic.emt import EMT_ELEMENTS, langevin_frames, strained

    symbols = [chemical_symbols[z] for z in sorted({int(z) for s in structures for z in s.numbers})]
    if len(symbols) != 1 or symbols[0] not in EMT_ELEMENTS:
        raise ValueError(f"the built-in shifts relabel with EMT: they need structures of one of {', '.join(EMT_ELEMENTS)}, "
                         f"got {', '.join(symbols)}")
    sets = []
    for shift in shifts:
        if shift == "hot":
            sets.append((f"MD at {hot_temperature:g} K",
                         langevin_frames(structures[0], EMT(), frames, hot_temperature, seed=seed + 7, warmup=10)))
        elif shift == "strain":
            for sign in (1, -1):
                sets.append((f"strain {sign * strain:+.0%}", strained(structures[:frames], sign * strain, EMT())))
        else:
            raise ValueError(f"unknown shift {shift!r} (known: hot, strain)")
    return sets


def evaluate_committee(path: str | os.PathLike, data: str | os.PathLike, calibration: str | os.PathLike | None = None,
                       shifts: Sequence[str] = (), batch_size: int = 8, dtype: str | None = None, **shift_options: Any) -> dict[str, Any]:
    """Errors, calibration and out-of-distribution rows of the committee in run directory ``path``.

    The spread's scale factors are fitted on ``calibration`` (default ``data``) and applied
    unchanged to ``data`` and each shifted set (:func:`shifted_sets`, options ``frames``,
    ``hot_temperature``, ``strain``, ``seed``).

    Returns:
        ``members``, ``calibrated_on``, ``force_scale``, ``energy_scale`` and ``rows``: a list of
        ``{"name", "metrics"}`` (:func:`uncertainty_metrics`), in-distribution first.
    """
    from equiscale.atomistic.structures import read_structures

    committee = load_potential_committee(path, dtype=dtype)
    structures = read_structures(data)
    predictions = predict_committee(committee, structures, batch_size)
    fit = uncertainty_metrics(predict_committee(committee, read_structures(calibration), batch_size)
                              if calibration else predictions)
    scales = {"force_scale": fit["force_scale"], "energy_scale": fit.get("energy_scale")}
    rows = [{"name": "in distribution", "metrics": uncertainty_metrics(predictions, **scales)}]
    for name, shifted in shifted_sets(structures, shifts, **shift_options) if shifts else []:
        rows.append({"name": name, "metrics": uncertainty_metrics(predict_committee(committee, shifted, batch_size), **scales)})
    return {"members": len(committee), "calibrated_on": os.fspath(calibration or data), **scales, "rows": rows}


COLUMNS = (("structures", "structures", "{:.0f}"), ("energy MAE meV/atom", "energy_mae_per_atom", "{:.2f}"),
           ("force MAE meV/A", "force_mae", "{:.1f}"), ("force RMSE meV/A", "force_rmse", "{:.1f}"),
           ("force spread meV/A", "force_sigma_rms", "{:.1f}"), ("Spearman", "force_spearman", "{:.2f}"),
           ("NLL", "force_nll", "{:.2f}"))
"""The columns of the committee table: title, metric, format (spread: RMS of the calibrated force spread)."""


def committee_table(report: dict[str, Any]) -> str:
    """The rows of :func:`evaluate_committee` as a Markdown table."""
    lines = ["| data | " + " | ".join(title for title, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in report["rows"]:
        cells = [fmt.format(row["metrics"].get(key, float("nan"))) for _, key, fmt in COLUMNS]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shift_plot(report: dict[str, Any], path: str | os.PathLike, title: str = "") -> None:
    """Force RMSE and the calibrated predicted spread (RMS) for each row of :func:`evaluate_committee`, as PNG."""
    from equiscale.plotting import pyplot, save_png

    names = [row["name"] for row in report["rows"]]
    error = [row["metrics"]["force_rmse"] for row in report["rows"]]
    spread = [row["metrics"]["force_sigma_rms"] for row in report["rows"]]
    figure, axis = pyplot().subplots(figsize=(1.6 * len(names) + 2.5, 3.8))
    x = np.arange(len(names))
    axis.bar(x - 0.2, error, 0.4, label="force RMSE (observed)")
    axis.bar(x + 0.2, spread, 0.4, label="predicted: calibrated committee spread")
    axis.set_xticks(x, names)
    axis.set_ylabel("meV/A")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3, axis="y")
    axis.set_title(title or f"committee of {report['members']}: error and predicted uncertainty against the shift", fontsize=9)
    figure.tight_layout()
    save_png(figure, path, dpi=110)


def evaluate_potential_command(settings: Any, applications: Sequence[Any] | None = None) -> int:
    """``equiscale evaluate potential``: a committee's table (errors, calibration, shifts) and figures;
    a single checkpoint goes to :func:`equiscale.atomistic.commands.evaluate_potential`."""
    import json
    from pathlib import Path

    from equiscale.uncertainty.calibration import calibration_plot
    from equiscale.uncertainty.files import is_committee

    if not is_committee(settings.checkpoint):
        if settings.shifts or settings.calibration:
            raise ValueError(f"--shifts and --calibration need a committee (a run trained with --ensemble N); "
                             f"{settings.checkpoint} is a single model")
        from equiscale.atomistic.commands import evaluate_potential as evaluate_single

        return evaluate_single(settings, applications)
    report = evaluate_committee(settings.checkpoint, settings.data, settings.calibration, settings.shifts,
                                settings.batch_size, settings.dtype, frames=settings.shift_frames,
                                hot_temperature=settings.hot_temperature, strain=settings.strain, seed=settings.seed)
    print(f"committee of {report['members']} potentials; spread scale fitted on {report['calibrated_on']} (maximum "
          f"likelihood, Gaussian): forces x{report['force_scale']:.3g}, energies x{report['energy_scale']:.3g}")
    print(committee_table(report))
    if settings.json:
        with open(settings.json, "w") as file:
            json.dump(report, file, indent=1)
    if settings.figures:
        folder = Path(settings.out or settings.checkpoint)
        curves = {row["name"]: row["metrics"]["force_calibration"] for row in report["rows"]}
        calibration_plot(curves, folder / "calibration.png", unit="meV/A", title="forces: binned by committee spread")
        shift_plot(report, folder / "shifts.png")
        print(f"figures: {folder / 'calibration.png'}, {folder / 'shifts.png'}")
    return 0
