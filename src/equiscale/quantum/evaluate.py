"""Evaluating a Hamiltonian model: the QH9 metrics, SCF from the predicted H against ``minao``, figures.

Metrics (over the frames of a DFT dataset directory, each molecule's own AOs):

* ``h_mae_uha``: MAE of the H entries, micro-Hartree;
* ``orbital_energy_mae_uha``: MAE of the occupied orbital energies of ``F C = S C eps`` (predicted F,
  true S) against those of the true F, micro-Hartree;
* ``orbital_cosine``: mean ``|<c_pred, c_true>| / (|c_pred| |c_true|)`` over the occupied orbitals'
  coefficient vectors (QH9's psi similarity; the sign of an orbital is arbitrary);
* ``gap_mae_uha``: MAE of the HOMO-LUMO gap, micro-Hartree;
* ``energy_mae_mha``, ``dipole_mae``, ``polarizability_mae``: the property heads (mHa, a.u.);
* on the first ``scf_frames`` frames, PySCF's SCF (the dataset's functional and basis) from the
  density of the predicted H and from PySCF's ``minao`` guess: mean iterations and wall seconds of
  each, their ratio, and the largest difference of the converged energies (Hartree).

Figures: ``hamiltonian.png`` (true, predicted and error of H for the first frame),
``orbital_parity.png`` (predicted against true orbital energies), ``scf_convergence.png``
(|E_k - E_final| per iteration for both starts).

A committee run directory (``train hamiltonian --ensemble N``) is evaluated through the members' mean
(H and properties); the result then also holds ``uncertainty``: the calibration of the per-block
spread against the per-block error (:mod:`equiscale.quantum.uncertainty`), and the figure
``calibration.png`` (expected against observed block error, micro-Hartree).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["evaluate_hamiltonian", "UNITS", "plot_hamiltonian", "plot_orbital_parity", "plot_scf_convergence"]

UNITS = {"h_mae_uha": "uHa", "orbital_energy_mae_uha": "uHa", "gap_mae_uha": "uHa", "energy_mae_mha": "mHa",
         "dipole_mae": "a.u.", "polarizability_mae": "a.u.", "scf_seconds_predicted": "s", "scf_seconds_minao": "s",
         "scf_energy_difference": "Ha"}


def plot_hamiltonian(true: np.ndarray, predicted: np.ndarray, path: str | Path) -> None:
    """True, predicted and error heatmaps of one H (Hartree; the error in micro-Hartree)."""
    from equiscale.plotting import pyplot, save_png

    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    from matplotlib.colors import SymLogNorm

    limit = float(np.abs(true).max())
    for ax, matrix, title in ((axes[0], true, "true H (Ha)"), (axes[1], predicted, "predicted H (Ha)")):
        # symmetric log scale: core orbitals (-20 Ha) and small couplings (1e-3 Ha) on one picture
        image = ax.imshow(matrix, cmap="RdBu_r", norm=SymLogNorm(1e-3, vmin=-limit, vmax=limit))
        ax.set_title(title)
        figure.colorbar(image, ax=ax, shrink=0.8)
    error = (predicted - true) * 1e6
    bound = float(np.abs(error).max()) or 1.0
    image = axes[2].imshow(error, cmap="RdBu_r", vmin=-bound, vmax=bound)
    axes[2].set_title(f"error (uHa), MAE {np.abs(error).mean():.1f}")
    figure.colorbar(image, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_xlabel("AO")
        ax.set_ylabel("AO")
    figure.tight_layout()
    save_png(figure, path)


def plot_orbital_parity(parity: list[tuple[np.ndarray, np.ndarray, int]], path: str | Path) -> None:
    """Predicted against true orbital energies (Hartree), occupied and virtual apart."""
    from equiscale.plotting import pyplot, save_png

    plt = pyplot()
    figure, ax = plt.subplots(figsize=(5, 5))
    occupied_true = np.concatenate([t[:k] for t, _, k in parity])
    occupied_pred = np.concatenate([p[:k] for _, p, k in parity])
    virtual_true = np.concatenate([t[k:] for t, _, k in parity])
    virtual_pred = np.concatenate([p[k:] for _, p, k in parity])
    ax.scatter(occupied_true, occupied_pred, s=8, label="occupied")
    ax.scatter(virtual_true, virtual_pred, s=8, label="virtual")
    low = min(occupied_true.min(), occupied_pred.min())
    high = max(virtual_true.max() if virtual_true.size else occupied_true.max(), occupied_pred.max())
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    ax.set_xlabel("true orbital energy (Ha)")
    ax.set_ylabel("predicted orbital energy (Ha)")
    ax.legend()
    figure.tight_layout()
    save_png(figure, path)


def plot_scf_convergence(runs: list[tuple], path: str | Path) -> None:
    """|E_k - E_final| (Hartree) per SCF iteration, from the predicted H and from minao, one line per frame."""
    from equiscale.plotting import pyplot, save_png

    plt = pyplot()
    figure, ax = plt.subplots(figsize=(6, 4))
    for k, (predicted, minao) in enumerate(runs):
        for run, color, label in ((predicted, "C0", "from predicted H"), (minao, "C1", "from minao")):
            energies = np.asarray(run.energies)
            if energies.size:
                ax.semilogy(np.arange(1, energies.size + 1), np.abs(energies - run.energy) + 1e-14, color=color,
                            alpha=0.7, label=label if k == 0 else None)
    ax.set_xlabel("SCF iteration")
    ax.set_ylabel("|E - E_converged| (Ha)")
    ax.legend()
    figure.tight_layout()
    save_png(figure, path)


def _orbital_metrics(h: torch.Tensor, fock: torch.Tensor, overlap: torch.Tensor, occupied: int) -> dict[str, Any]:
    from equiscale.quantum.properties import solve_fock

    eps_pred, c_pred = solve_fock(h, overlap)
    eps_true, c_true = solve_fock(fock, overlap)
    cosine = ((c_pred[:, :occupied] * c_true[:, :occupied]).sum(0).abs()
              / (c_pred[:, :occupied].norm(dim=0) * c_true[:, :occupied].norm(dim=0)))
    gap_pred = eps_pred[occupied] - eps_pred[occupied - 1] if occupied < len(eps_pred) else eps_pred.new_tensor(0.0)
    gap_true = eps_true[occupied] - eps_true[occupied - 1] if occupied < len(eps_true) else eps_true.new_tensor(0.0)
    return {"eps_error": (eps_pred[:occupied] - eps_true[:occupied]).abs(), "cosine": cosine,
            "gap_error": float((gap_pred - gap_true).abs()), "eps_pred": eps_pred, "eps_true": eps_true}


def _predict_all(model: torch.nn.Module, frames: list[dict], batch_size: int, dtype: torch.dtype,
                 on_frame: Callable[[int, dict, dict[str, torch.Tensor]], None]) -> None:
    from equiscale.quantum.training import collate
    from equiscale.quantum.uncertainty import HamiltonianCommittee

    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            batch = collate(chunk, dtype)
            spread = None
            if isinstance(model, HamiltonianCommittee):
                out, spread = model.predict(batch)
            else:
                out = model(batch)
            for b, frame in enumerate(chunk):
                n = int(out["num_orbitals"][b])
                values = {"hamiltonian": out["hamiltonian"][b, :n, :n].double(),
                          "energy": out["energy"][b].double(), "dipole": out["dipole"][b].double(),
                          "polarizability": out["polarizability"][b].double()}
                if spread is not None:
                    values["hamiltonian_spread"] = spread["hamiltonian"][b, :n, :n].double()
                on_frame(start + b, frame, values)


def _scf_runs(frames: list[dict], predictions: list[np.ndarray], basis: str, xc: str, conv_tol: float) -> list[tuple]:
    from equiscale.quantum.labels import make_molecule
    from equiscale.quantum.scf import scf_from_fock, scf_from_minao

    runs = []
    for frame, h in zip(frames, predictions):
        mol = make_molecule(frame["numbers"], frame["positions"], basis)
        runs.append((scf_from_fock(mol, h, xc=xc, conv_tol=conv_tol), scf_from_minao(mol, xc=xc, conv_tol=conv_tol)))
    return runs


def evaluate_hamiltonian(checkpoint: str | Path, data: str | Path, frames: int | None = None, scf_frames: int = 5,
                         conv_tol: float = 1e-10, batch_size: int = 8, dtype: str | None = None,
                         figures: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """The metrics of the module docstring for a checkpoint on a dataset; figures into ``figures`` (a directory).

    Args:
        checkpoint: a ``hamiltonian`` checkpoint, a run directory (its ``best.pt``) or a committee run
            directory (``--ensemble N``).

    Returns:
        The metrics by name (floats); for a committee also ``uncertainty``, a dict
        (:func:`equiscale.quantum.uncertainty.block_metrics`, with ``members``).

    Raises:
        FileNotFoundError, ValueError: no such checkpoint or dataset, a checkpoint of another kind,
            or a dataset whose basis description differs from the model's.
    """
    from equiscale.quantum.basis import shells_from_json
    from equiscale.quantum.data import DFTDataset
    from equiscale.quantum.properties import occupied_count
    from equiscale.quantum.training import load_frames, load_hamiltonian

    from equiscale.uncertainty.files import is_committee

    if is_committee(checkpoint):
        from equiscale.quantum.uncertainty import load_hamiltonian_committee

        model, state = load_hamiltonian_committee(checkpoint, dtype)
    else:
        model, state = load_hamiltonian(checkpoint, dtype)
    model_dtype = next(model.parameters()).dtype
    dataset = DFTDataset(data)
    trained = shells_from_json(state["header"]["statistics"]["shells"])
    for z, ls in dataset.shells.items():
        if z in trained and trained[z] != ls:
            raise ValueError(f"{data} describes element Z={z} with shells {ls}, the model was trained with {trained[z]}: "
                             f"another basis ({dataset.basis})")
    count = len(dataset) if frames is None else min(frames, len(dataset))
    items, _ = load_frames(data, range(count), guess=getattr(model, "guess", "none"))
    h_errors, eps_errors, cosines, gaps, e_errors, d_errors, p_errors = [], [], [], [], [], [], []
    parity: list[tuple[np.ndarray, np.ndarray, int]] = []
    predictions: list[np.ndarray] = []
    first: dict[str, np.ndarray] = {}
    block_errors: list[np.ndarray] = []
    block_sigma: list[np.ndarray] = []
    block_types: list[str] = []

    def on_frame(index: int, frame: dict, out: dict[str, torch.Tensor]) -> None:
        fock = torch.as_tensor(frame["fock"], dtype=torch.float64)
        overlap = torch.as_tensor(frame["overlap"], dtype=torch.float64)
        h = out["hamiltonian"]
        h_errors.append((h - fock).abs().flatten())
        occupied = occupied_count(frame["numbers"].tolist())
        orbitals = _orbital_metrics(h, fock, overlap, occupied)
        eps_errors.append(orbitals["eps_error"])
        cosines.append(orbitals["cosine"])
        gaps.append(orbitals["gap_error"])
        e_errors.append(abs(float(out["energy"]) - float(frame["energy"])))
        d_errors.append((out["dipole"] - torch.as_tensor(frame["dipole"])).abs().mean().item())
        if "polarizability" in frame and np.isfinite(frame["polarizability"]).all():
            p_errors.append((out["polarizability"] - torch.as_tensor(frame["polarizability"])).abs().mean().item())
        if len(parity) < 50:
            parity.append((orbitals["eps_true"].numpy(), orbitals["eps_pred"].numpy(), occupied))
        if index < scf_frames:
            predictions.append(h.numpy())
        if index == 0:
            first.update(true=fock.numpy(), predicted=h.numpy())
        if "hamiltonian_spread" in out:
            from equiscale.quantum import uncertainty

            blocks = uncertainty.shell_blocks(frame["numbers"].tolist(), trained)
            block_errors.append(uncertainty.block_errors(h, fock, blocks))
            block_sigma.append(uncertainty.block_spread(out["hamiltonian_spread"], blocks))
            block_types.extend(kind for _, _, kind in blocks)

    _predict_all(model, items, batch_size, model_dtype, on_frame)
    metrics = {
        "frames": float(count),
        "h_mae_uha": float(torch.cat(h_errors).mean()) * 1e6,
        "orbital_energy_mae_uha": float(torch.cat(eps_errors).mean()) * 1e6,
        "orbital_cosine": float(torch.cat(cosines).mean()),
        "gap_mae_uha": float(np.mean(gaps)) * 1e6,
        "energy_mae_mha": float(np.mean(e_errors)) * 1e3,
        "dipole_mae": float(np.mean(d_errors)),
    }
    if p_errors:
        metrics["polarizability_mae"] = float(np.mean(p_errors))
    runs = _scf_runs(items[:scf_frames], predictions, dataset.basis, dataset.xc, conv_tol) if scf_frames else []
    if runs:
        predicted = [r[0] for r in runs]
        minao = [r[1] for r in runs]
        metrics.update({
            "scf_frames": float(len(runs)),
            "scf_iterations_predicted": float(np.mean([r.iterations for r in predicted])),
            "scf_iterations_minao": float(np.mean([r.iterations for r in minao])),
            "scf_seconds_predicted": float(np.mean([r.seconds for r in predicted])),
            "scf_seconds_minao": float(np.mean([r.seconds for r in minao])),
            "scf_energy_difference": float(max(abs(a.energy - b.energy) for a, b in runs)),
            "scf_converged": float(all(a.converged and b.converged for a, b in runs)),
        })
        metrics["scf_iteration_ratio"] = metrics["scf_iterations_predicted"] / max(metrics["scf_iterations_minao"], 1.0)
    if block_errors:
        from equiscale.quantum.uncertainty import block_metrics

        calibration = block_metrics(np.concatenate(block_errors), np.concatenate(block_sigma), block_types)
        metrics["uncertainty"] = {"members": len(model), **calibration}
    if figures is not None:
        folder = Path(figures)
        plot_hamiltonian(first["true"], first["predicted"], folder / "hamiltonian.png")
        plot_orbital_parity(parity, folder / "orbital_parity.png")
        if runs:
            plot_scf_convergence(runs, folder / "scf_convergence.png")
        if "uncertainty" in metrics:
            from equiscale.uncertainty.calibration import calibration_plot

            curve = metrics["uncertainty"]["calibration"]
            micro = {k: [x * 1e6 for x in curve[k]] for k in ("expected", "observed")}
            calibration_plot({"H blocks": micro}, folder / "calibration.png", unit="uHa",
                             title=f"committee of {len(model)}: blocks binned by spread")
    return metrics
