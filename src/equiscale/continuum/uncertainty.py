"""Committees of fluid surrogates: rollouts with a per-pixel spread, calibration and out-of-distribution shifts.

A committee (``equiscale train fluid ... --ensemble N``) predicts a rollout by rolling every member
out on its own from the same initial vorticity; its prediction at each step is the members' mean
and its uncertainty the per-pixel sample standard deviation over the members' trajectories. The
spread of a rotated input is the rotated spread; under a reflection of D(4) vorticity changes sign
but the spread does not (it is a scalar field, the mean a pseudo-scalar one).

Calibration treats every pixel of every rollout step ``1..steps`` as one sample: the error
``mean - truth`` against the spread (:mod:`equiscale.uncertainty.calibration`). One scale factor is
fitted on the in-distribution data and applied unchanged to the shifted data. Spreads are floored at
1e-6 of their RMS, so that pixels where the members agree exactly do not make the scale infinite.

Built-in shifts (:func:`shifted_data`; the names ``--shifts`` takes): ``"viscosity"``, trajectories
simulated with the built-in solver at ``viscosity_factor`` (default 0.5) times the training file's
viscosity; ``"rollout"``, rollouts ``rollout_factor`` (default 2) times longer than the members'
validation horizon. The simulated files are written to the output directory and keep the
viscosity they were simulated with.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from equiscale.continuum.data import FluidData, generate_fluid
from equiscale.continuum.settings import SHIFTS
from equiscale.uncertainty.model import Committee

__all__ = ["FluidCommittee", "SHIFTS", "load_fluid_committee", "committee_rollout", "rollout_with_spread",
           "uncertainty_metrics", "shifted_data", "evaluate_fluid_committee", "committee_table"]

SPEARMAN_SAMPLES = 200_000  # pixels drawn (evenly spaced) for the rank correlation; calibration uses all


class FluidCommittee(Committee):
    """A :class:`~equiscale.uncertainty.Committee` of one-step fluid surrogates.

    ``committee(w)`` is the members' mean one-step prediction; :meth:`rollout_mean` is what
    :func:`equiscale.continuum.evaluate.rollout` uses for it (the mean of the members' own rollouts).
    """

    def rollout_mean(self, w0: Tensor, steps: int, batch_size: int = 64) -> Tensor:
        """The mean of the members' rollouts ``(B, steps + 1, R, R)`` from ``w0`` ``(B, R, R)``."""
        return committee_rollout(self, w0, steps, batch_size)[0]


def load_fluid_committee(path: str | os.PathLike, which: str = "best") -> tuple[FluidCommittee, dict[str, Any]]:
    """The committee trained into ``path`` (each member's ``best.pt``) and the record of member 0,
    with ``members`` (their number) and ``parameters`` (summed over the members) added."""
    from equiscale.continuum.training import load_run
    from equiscale.uncertainty.model import committee_members

    records: list[dict[str, Any]] = []

    def member(folder: Path) -> torch.nn.Module:
        model, record = load_run(folder, which)
        records.append(record)
        return model

    committee = FluidCommittee(committee_members(path, member)).eval()
    record = dict(records[0])
    record["members"] = len(committee)
    record["parameters"] = sum(int(r.get("parameters") or 0) for r in records)
    return committee, record


@torch.no_grad()
def committee_rollout(committee: Committee, w0: Tensor, steps: int, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Each member rolled out on its own from ``w0`` ``(B, R, R)``; the mean and the per-pixel spread
    (sample standard deviation over members, zero for one member), each ``(B, steps + 1, R, R)``."""
    from equiscale.continuum.evaluate import rollout

    stacked = torch.stack([rollout(member, w0, steps, batch_size) for member in committee.members])
    spread = stacked.std(0, unbiased=True) if len(stacked) > 1 else torch.zeros_like(stacked[0])
    return stacked.mean(0), spread


def rollout_with_spread(committee: Committee, vorticity: Tensor, steps: int) -> dict[str, Tensor]:
    """Rollouts of ``steps`` steps from frames ``0, steps, 2 steps, ...`` of every trajectory of
    ``vorticity`` ``(N, T + 1, R, R)``: ``mean``, ``spread`` and ``truth``, each ``(S, steps + 1, R, R)``."""
    from equiscale.continuum.evaluate import _starts

    starts = _starts(vorticity.shape[1], steps)
    w0 = torch.cat([vorticity[:, s] for s in starts])
    truth = torch.cat([vorticity[:, s:s + steps + 1] for s in starts])
    mean, spread = committee_rollout(committee, w0, steps)
    return {"mean": mean, "spread": spread, "truth": truth}


def uncertainty_metrics(mean: Tensor, spread: Tensor, truth: Tensor, scale: float | None = None) -> dict[str, Any]:
    """Errors and calibration of a committee's rollouts (``(S, steps + 1, R, R)`` each, step 0 given).

    Every pixel of steps ``1..steps`` is one sample. With ``scale`` (fitted elsewhere, e.g. in
    distribution) the spread is multiplied by it; without, it is fitted here.

    Returns:
        ``scale``, ``spearman`` (spread against absolute error), ``nll`` (Gaussian, per pixel),
        ``rmse`` and ``sigma_rms`` (calibrated spread) over all pixels, ``relative_last`` (mean
        relative L2 error at the last step), ``error_curve`` and ``sigma_curve`` (RMS per step
        ``1..steps``), ``calibration`` (the binned curve) and ``samples``.
    """
    from equiscale.uncertainty.calibration import calibration_curve, fit_scale, gaussian_nll, spearman

    errors = (mean[:, 1:] - truth[:, 1:]).double()
    sigma = spread[:, 1:].double()
    # a floor for pixels where the members agree (almost) exactly, which would otherwise dominate the fit
    sigma = sigma.clamp_min(max(1e-12, 1e-6 * float(sigma.square().mean().sqrt())))
    flat_errors, flat_sigma = errors.reshape(-1).numpy(), sigma.reshape(-1).numpy()
    scale = fit_scale(flat_errors, flat_sigma) if scale is None else float(scale)
    every = max(1, flat_sigma.size // SPEARMAN_SAMPLES)
    relative = (errors[:, -1].flatten(1).norm(dim=1) / truth[:, -1].double().flatten(1).norm(dim=1).clamp_min(1e-30))
    curve = calibration_curve(flat_errors, flat_sigma, scale)
    return {"scale": scale, "spearman": spearman(flat_errors[::every], flat_sigma[::every]),
            "nll": gaussian_nll(flat_errors, flat_sigma, scale),
            "rmse": float(errors.square().mean().sqrt()), "sigma_rms": float(scale * sigma.square().mean().sqrt()),
            "relative_last": float(relative.mean()), "steps": int(errors.shape[1]), "rollouts": int(errors.shape[0]),
            "error_curve": errors.square().mean((0, 2, 3)).sqrt().tolist(),
            "sigma_curve": (scale * sigma.square().mean((0, 2, 3)).sqrt()).tolist(),
            "calibration": {k: [float(x) for x in v] for k, v in curve.items()}, "samples": int(flat_sigma.size)}


def shifted_data(shifts: Sequence[str], data: FluidData, record: dict[str, Any], rollout: int,
                 folder: str | os.PathLike, trajectories: int = 4, viscosity_factor: float = 0.5,
                 rollout_factor: float = 2.0, seed: int = 1000, progress: bool = False
                 ) -> list[tuple[str, FluidData, int, dict[str, Any]]]:
    """The built-in out-of-distribution sets: ``(name, data, rollout steps, description)`` per shift.

    ``"viscosity"``: ``trajectories`` new trajectories of ``rollout`` steps at ``viscosity_factor``
    times the training viscosity (the members' record; else ``data``'s), simulated on ``data``'s grid
    and time step into ``folder/shift-viscosity.npz``. ``"rollout"``: rollouts of
    ``rollout_factor`` times the validation horizon ``H`` from frame 0 of ``data``'s trajectories when
    they are long enough, else of ``trajectories`` new trajectories at the training viscosity
    (``folder/shift-rollout.npz``).

    Raises:
        ValueError: an unknown shift.
    """
    folder = Path(folder)
    trained = float(record.get("viscosity") or data.viscosity)
    sets = []
    for shift in shifts:
        common = {"trajectories": trajectories, "resolution": data.resolution, "dt": data.dt,
                  "domain_size": data.domain_size, "progress": progress}
        if shift == "viscosity":
            viscosity = viscosity_factor * trained
            shifted = generate_fluid(folder / "shift-viscosity.npz", steps=rollout, viscosity=viscosity, seed=seed,
                                     **common)
            sets.append((f"viscosity x{viscosity_factor:g} ({viscosity:.3g})", shifted, rollout,
                         {"shift": shift, "viscosity": viscosity, "file": str(folder / "shift-viscosity.npz")}))
        elif shift == "rollout":
            horizon = int(record.get("validation_horizon") or record.get("train", {}).get("val_rollout") or rollout)
            steps = max(1, int(round(rollout_factor * horizon)))
            if data.frames >= steps + 1:
                shifted, file = data, "the evaluation data"
            else:
                file = str(folder / "shift-rollout.npz")
                shifted = generate_fluid(file, steps=steps, viscosity=trained, seed=seed + 1, **common)
            sets.append((f"rollout {steps} steps ({rollout_factor:g} x H={horizon})", shifted, steps,
                         {"shift": shift, "viscosity": shifted.viscosity, "validation_horizon": horizon, "file": file}))
        else:
            raise ValueError(f"unknown shift {shift!r} (known: {', '.join(SHIFTS)})")
    return sets


def evaluate_fluid_committee(committee: Committee, record: dict[str, Any], data: FluidData, rollout: int,
                             folder: str | os.PathLike, calibration: FluidData | None = None,
                             shifts: Sequence[str] = (), **shift_options: Any) -> dict[str, Any]:
    """Errors, calibration and shifted rows of a fluid committee, in-distribution row first.

    The scale is fitted on ``calibration`` (default ``data``) with ``rollout``-step rollouts and
    applied unchanged to every row (:func:`uncertainty_metrics`); ``shift_options`` go to
    :func:`shifted_data`.

    Returns:
        ``members``, ``scale`` and ``rows``: ``{"name", "viscosity", "trajectories", "metrics", ...}``.
    """
    def run(fluid: FluidData, steps: int, scale: float | None) -> dict[str, Any]:
        vorticity = torch.from_numpy(np.ascontiguousarray(fluid.vorticity))
        return uncertainty_metrics(**rollout_with_spread(committee, vorticity, steps), scale=scale)

    fitted = run(calibration or data, rollout, None)
    scale = fitted["scale"]
    rows = [{"name": "in distribution", "viscosity": data.viscosity, "trajectories": data.trajectories,
             "metrics": fitted if calibration is None else run(data, rollout, scale)}]
    for name, shifted, steps, description in shifted_data(shifts, data, record, rollout, folder, **shift_options):
        rows.append({"name": name, **description, "trajectories": shifted.trajectories,
                     "metrics": run(shifted, steps, scale)})
    return {"members": len(committee), "scale": scale, "rows": rows}


def committee_table(report: dict[str, Any]) -> str:
    """The rows of :func:`evaluate_fluid_committee` as a Markdown table."""
    lines = ["| data | viscosity | rollouts x steps | relative L2 at last step | RMSE | calibrated spread (RMS) | "
             "Spearman | NLL |", "|---" * 8 + "|"]
    for row in report["rows"]:
        m = row["metrics"]
        lines.append(f"| {row['name']} | {row['viscosity']:.3g} | {m['rollouts']} x {m['steps']} | "
                     f"{m['relative_last']:.4f} | {m['rmse']:.4g} | {m['sigma_rms']:.4g} | {m['spearman']:.2f} | "
                     f"{m['nll']:.2f} |")
    return "\n".join(lines)

