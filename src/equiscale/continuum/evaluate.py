"""Evaluation of trained fluid surrogates: one-step and rollout errors, equivariance, report, figures.

Errors are relative L2 norms per field, ``|pred - true| / |true|``, averaged over samples. Rollouts
start from frames ``0, rollout, 2 rollout, ...`` of every trajectory of the evaluation file (as
long as ``rollout`` frames follow). The equivariance error is that of :mod:`equiscale.testing`,
``max |f(g.w) - g.f(w)| / max |f(w)|`` over the three non-trivial 90-degree rotations g, for one
step and for the whole rollout. A "persistence" row (predicting no change) gives the scale.

Physics along the rollouts from frame 0 of every trajectory (:mod:`.spectra`): the energy spectrum
of predicted and true fields at several steps, the enstrophy over time, and two horizons: the first
step at which the mean error passes 0.5, and the first at which it passes persistence's error.
A run may be evaluated on data of another resolution than it was trained on (e.g. a 64x64-trained
operator on a 128x128 file): the report states both.

A committee run directory (``train fluid --ensemble N``) is evaluated as one run through the mean
of its members' own rollouts, and gets a section of its own (:mod:`.uncertainty`): the per-pixel
spread's calibration and the ``--shifts`` rows beside the in-distribution row, with figures.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from equiscale.continuum.data import load_fluid
from equiscale.continuum.spectra import energy_spectrum, enstrophy, horizon
from equiscale.continuum.training import load_run
from equiscale.train.progress import progress_bar

__all__ = ["rollout", "one_step_error", "rollout_errors", "rotation_equivariance_error", "evaluate_runs"]

Model = Callable[[Tensor], Tensor]
EQUIVARIANT = ("gcnn", "gunet", "gfno")  # the models whose report names their group


@torch.no_grad()
def rollout(model: Model, w0: Tensor, steps: int, batch_size: int = 64) -> Tensor:
    """Apply ``model`` ``steps`` times to ``w0`` ``(B, R, R)``: ``(B, steps + 1, R, R)`` with ``w0`` first.

    A committee (:class:`~.uncertainty.FluidCommittee`) gives the mean of its members' own rollouts.
    """
    if hasattr(model, "rollout_mean"):
        return model.rollout_mean(w0, steps, batch_size)
    chunks = []
    for start in range(0, w0.shape[0], batch_size):
        w = w0[start:start + batch_size]
        frames = [w]
        for _ in range(steps):
            w = model(w)
            frames.append(w)
        chunks.append(torch.stack(frames, 1))
    return torch.cat(chunks)


def _relative(prediction: Tensor, truth: Tensor) -> Tensor:
    """Relative L2 error per field over the last two axes."""
    return (prediction - truth).flatten(-2).norm(dim=-1) / truth.flatten(-2).norm(dim=-1).clamp_min(1e-30)


@torch.no_grad()
def one_step_error(model: Model, vorticity: Tensor, batch_size: int = 64) -> float:
    """Mean relative L2 error of ``model(w_t)`` against ``w_{t+1}`` over all pairs of ``[N, T + 1, R, R]``."""
    inputs = vorticity[:, :-1].reshape(-1, *vorticity.shape[-2:])
    targets = vorticity[:, 1:].reshape(-1, *vorticity.shape[-2:])
    errors = [_relative(model(inputs[i:i + batch_size]), targets[i:i + batch_size])
              for i in range(0, len(inputs), batch_size)]
    return float(torch.cat(errors).mean())


def _starts(frames: int, steps: int) -> list[int]:
    if frames < steps + 1:
        raise ValueError(f"trajectories of {frames} frames are too short for a {steps}-step rollout "
                         f"(use --rollout {frames - 1} or fewer)")
    return list(range(0, frames - steps, steps))


def rollout_errors(model: Model, vorticity: Tensor, steps: int) -> tuple[np.ndarray, Tensor]:
    """Mean relative L2 error at rollout steps ``1..steps`` (``[steps]``) and the rollouts themselves."""
    starts = _starts(vorticity.shape[1], steps)
    w0 = torch.cat([vorticity[:, s] for s in starts])
    truth = torch.cat([vorticity[:, s:s + steps + 1] for s in starts])
    predicted = rollout(model, w0, steps)
    return _relative(predicted[:, 1:], truth[:, 1:]).mean(0).numpy(), predicted


def _rotate(w: Tensor, k: int) -> Tensor:
    return torch.rot90(w, k, dims=(-1, -2))


@torch.no_grad()
def rotation_equivariance_error(model: Model, w0: Tensor, steps: int = 1) -> float:
    """``max_k max|F(R^k w) - R^k F(w)| / max|F(w)|`` with F the ``steps``-step rollout, k = 1, 2, 3."""
    reference = rollout(model, w0, steps)[:, -1].double()
    scale = reference.abs().max()
    worst = 0.0
    for k in (1, 2, 3):
        moved = rollout(model, _rotate(w0, k), steps)[:, -1].double()
        worst = max(worst, float((moved - _rotate(reference, k)).abs().max() / scale))
    return worst


def _persistence(w: Tensor) -> Tensor:
    return w


def _evaluate_model(name: str, model: Model, record: dict[str, Any], vorticity: Tensor, steps: int,
                    persistence: np.ndarray) -> tuple[dict, np.ndarray, Tensor]:
    curve, predicted = rollout_errors(model, vorticity, steps)
    w0 = vorticity[:, 0]
    row = {
        "trained_resolution": record.get("resolution"),
        "horizon_0.5": horizon(curve, 0.5), "horizon_persistence": horizon(curve, persistence),
        "run": name, "model": record.get("model", {}).get("model", name), "group": record.get("model", {}).get("group", ""),
        "fraction": record.get("train", {}).get("fraction", float("nan")),
        "train_trajectories": len(record.get("train_trajectories", [])), "parameters": record.get("parameters", 0),
        "steps": record.get("steps", 0), "train_time": record.get("train_time", 0.0),
        "one_step": one_step_error(model, vorticity),
        **{f"rollout_{k}": float(curve[k - 1]) for k in (10, 25, steps) if k <= steps},
        "equivariance_1": rotation_equivariance_error(model, w0, 1),
        f"equivariance_{steps}": rotation_equivariance_error(model, w0, steps),
    }
    return row, curve, predicted


def _format(rows: list[dict], steps: int) -> str:
    rollouts = sorted({k for k in (10, 25, steps) if k <= steps})
    header = ["run", "model", "fraction (trajectories)", "parameters", "train steps", "train time (s)", "one-step"]
    header += [f"rollout {k}" for k in rollouts] + ["error > 0.5 at step", "error > persistence at step"]
    header += ["equivariance, 1 step", f"equivariance, {steps} steps"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["run"], r["model"] + (f" {r['group']}" if r["model"] in EQUIVARIANT else ""),
                 f"{r['fraction']:g} ({r['train_trajectories']})", str(r["parameters"]), str(r["steps"]),
                 f"{r['train_time']:.0f}", f"{r['one_step']:.4f}"]
        cells += [f"{r[f'rollout_{k}']:.4f}" for k in rollouts]
        cells += [_horizon_text(r["horizon_0.5"], steps), _horizon_text(r["horizon_persistence"], steps)]
        cells += [f"{r['equivariance_1']:.1e}", f"{r[f'equivariance_{steps}']:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _horizon_text(step: int | None, steps: int) -> str:
    return f"> {steps}" if step is None else str(step)


def _physics(vorticity: Tensor, frame0: dict[str, Tensor], steps: int, domain_size: float) -> dict[str, Any]:
    """Spectra at several steps and enstrophy over the rollout, truth and each run, from frame 0."""
    times = sorted({t for t in (1, 10, 25, steps) if t <= steps})
    truth = vorticity[:, :steps + 1]
    k, _ = energy_spectrum(truth[:1, 0], domain_size)
    result = {"k": k.tolist(), "times": times, "spectra": {}, "enstrophy": {}}
    for name, fields in {"truth": truth, **frame0}.items():
        result["spectra"][name] = [energy_spectrum(fields[:, t], domain_size)[1].mean(0).tolist() for t in times]
        result["enstrophy"][name] = enstrophy(fields).mean(0).tolist()
    return result


def _summary(rows: list[dict], steps: int) -> str:
    """Mean (min-max) over runs that share model, group and fraction, when some do."""
    keys = sorted({(r["model"], r["group"], r["fraction"]) for r in rows}, key=lambda k: (k[2], k[0]))
    if len(keys) == len(rows):
        return ""
    metrics = ["one_step"] + [f"rollout_{k}" for k in sorted({k for k in (10, 25, steps) if k <= steps})]
    lines = ["| model | fraction | runs | train steps (mean) | " + " | ".join(m.replace("_", " ") for m in metrics)
             + " | equivariance, 1 step (max) |", "|" + "---|" * (len(metrics) + 5)]
    for model, group, fraction in keys:
        same = [r for r in rows if (r["model"], r["group"], r["fraction"]) == (model, group, fraction)]
        cells = [f"{np.mean([r[m] for r in same]):.4f} ({min(r[m] for r in same):.4f}-{max(r[m] for r in same):.4f})"
                 for m in metrics]
        name = model + (f" {group}" if model in EQUIVARIANT else "")
        lines.append(f"| {name} | {fraction:g} | {len(same)} | {np.mean([r['steps'] for r in same]):.0f} | "
                     + " | ".join(cells) + f" | {max(r['equivariance_1'] for r in same):.1e} |")
    return "\n\nMean (min-max) over runs of the same model and fraction:\n\n" + "\n".join(lines)


def _grouped_curves(rows: list[dict], curves: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Curves to draw and their styles: one per run, or the mean per model and fraction when runs repeat."""
    groups: dict[tuple[str, float], list[str]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["fraction"]), []).append(r["run"])
    repeated = any(len(v) > 1 for v in groups.values())
    drawn, styles = {}, {}
    for (model, fraction), runs in groups.items():
        for label, members in ((f"{model}, {fraction:g} of the data (mean of {len(runs)})", runs),) if repeated else \
                ((run, [run]) for run in runs):
            drawn[label] = np.mean([curves[m] for m in members], axis=0)
            styles[label] = (model, f"{fraction:g}")
    drawn.update({k: v for k, v in curves.items() if k not in {r["run"] for r in rows}})  # references
    return drawn, styles


def _load(run: str | os.PathLike) -> tuple[Model, dict[str, Any]]:
    """A run directory's model and record; a committee (``--ensemble``) as one :class:`~.uncertainty.FluidCommittee`."""
    from equiscale.uncertainty.files import is_committee

    if is_committee(run):
        from equiscale.continuum.uncertainty import load_fluid_committee

        return load_fluid_committee(run)
    return load_run(run)


def evaluate_runs(runs: Sequence[str | os.PathLike], data_path: str | os.PathLike, out: str | os.PathLike | None = None,
                  rollout: int = 25, figures: bool = True, progress: bool = True, shifts: Sequence[str] = (),
                  calibration: str | os.PathLike | None = None, **shift_options: Any) -> str:
    """Evaluate run directories on ``data_path``; write ``report.md``, ``metrics.json`` and PNGs to ``out``.

    Args:
        runs: run directories (or checkpoint files) of ``equiscale train fluid``.
        data_path: the fluid ``.npz`` to evaluate on (every trajectory; any resolution the models take).
        out: directory for the report and figures (default: the first run).
        rollout: rollout length in steps.
        figures: draw the PNGs (needs matplotlib).
        progress: show a progress bar.
        shifts: committees only: out-of-distribution shifts (:data:`.uncertainty.SHIFTS`) evaluated
            beside the in-distribution row; ``shift_options`` go to :func:`.uncertainty.shifted_data`.
        calibration: committees only: the ``.npz`` on which the spread's scale is fitted (default ``data_path``).

    Returns:
        The markdown report. Figures: ``rollout_<run>.png`` (truth, prediction and error of the
        first three trajectories at steps 0, 5, 10 and ``rollout``, colour bars, each error panel on
        its own scale), ``rollout_error.png`` (error against step, every run and persistence),
        ``spectra.png`` (energy spectra, predicted and true, at steps 1, 10, 25 and ``rollout``),
        ``enstrophy.png`` (enstrophy against step) and, when runs differ in training fraction,
        ``data_efficiency.png`` (with persistence and the spread over seeds). A committee run is
        evaluated through its mean rollout, and gets an uncertainty section (:func:`_committee_section`).
    """
    loaded = [_load(run) for run in runs]  # every run and the data are checked before anything is written
    if (shifts or calibration) and not any("members" in record for _, record in loaded):
        raise ValueError("--shifts and --calibration need a committee (a run trained with --ensemble N); "
                         f"{', '.join(map(str, runs))} holds single models")
    data = load_fluid(data_path)
    calibration_data = load_fluid(calibration) if calibration else None
    vorticity = torch.from_numpy(np.ascontiguousarray(data.vorticity))
    _starts(vorticity.shape[1], rollout)
    out = Path(out if out is not None else runs[0])
    out.mkdir(parents=True, exist_ok=True)
    names = [Path(r).name or str(r) for r in runs]
    if len(set(names)) < len(names):  # same folder names: use the paths, then number what is left
        names = [str(r).strip("/") for r in runs]
        names = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
    persistence_curve, _ = rollout_errors(_persistence, vorticity, rollout)
    rows, curves, frame0 = [], {}, {}
    iterator = progress_bar(list(zip(names, loaded)), enabled=progress, desc="evaluating", unit="run", leave=False)
    for name, (model, record) in iterator:
        model = model.float()
        row, curve, predicted = _evaluate_model(name, model, record, vorticity, rollout, persistence_curve)
        rows.append(row)
        curves[name] = curve
        frame0[name] = predicted[:vorticity.shape[0]]  # the rollouts from frame 0, one per trajectory
    curves["persistence (no change)"] = persistence_curve
    marks = sorted({k for k in (10, 25, rollout) if k <= rollout})
    persistence = {"one_step": one_step_error(_persistence, vorticity),
                   **{f"rollout_{k}": float(persistence_curve[k - 1]) for k in marks}}
    physics = _physics(vorticity, frame0, rollout, data.domain_size)
    other = sorted({r["trained_resolution"] for r in rows if r["trained_resolution"] not in (None, data.resolution)})
    resolution_note = (f" Runs trained at another resolution ({', '.join(f'{r}x{r}' for r in other)}) are evaluated "
                       f"here at {data.resolution}x{data.resolution}." if other else "")
    report = (f"Evaluation on {data_path}: {data.trajectories} trajectories of {data.frames} frames, "
              f"{data.resolution}x{data.resolution}, dt={data.dt:g}, viscosity={data.viscosity:g} ({data.layout_note})."
              f"{resolution_note} Relative L2 errors; the horizons are the first step at which the mean error "
              f"passes 0.5 and passes persistence's; equivariance under 90-degree rotations (float32)."
              f"\n\n{_format(rows, rollout)}{_summary(rows, rollout)}\n\n"
              f"Persistence (predict no change): one-step {persistence['one_step']:.4f}, "
              + ", ".join(f"rollout {k} {persistence[f'rollout_{k}']:.4f}" for k in marks)
              + f", error > 0.5 at step {_horizon_text(horizon(persistence_curve, 0.5), rollout)}\n\n"
              + "Enstrophy mean(w^2)/2 at steps " + ", ".join(str(t) for t in physics["times"]) + " (rollouts from frame "
              "0): " + "; ".join(f"{name} " + ", ".join(f"{physics['enstrophy'][name][t]:.3g}" for t in physics["times"])
                                 for name in physics["enstrophy"]) + "\n")
    committees = {}
    for name, (model, record) in zip(names, loaded):
        if "members" in record:
            committees[name] = _committee_section(name, model, record, data, rollout, out, calibration_data,
                                                  calibration or data_path, shifts, figures, shift_options)
            report += committees[name]["text"]
    (out / "report.md").write_text(report)
    (out / "metrics.json").write_text(json.dumps({"runs": rows, "persistence": persistence, "data": str(data_path),
                                                  "curves": {k: v.tolist() for k, v in curves.items()},
                                                  "physics": physics, "committees": committees}, indent=1))
    if figures:
        _draw(out, rows, curves, physics, vorticity[:, :rollout + 1].numpy(), frame0, rollout, persistence)
    return report


def _committee_section(name: str, committee: Any, record: dict[str, Any], data: Any, rollout: int, out: Path,
                       calibration: Any, calibrated_on: Any, shifts: Sequence[str], figures: bool,
                       shift_options: dict[str, Any]) -> dict[str, Any]:
    """A committee's calibration and shift rows (:mod:`.uncertainty`) as report text (``text``), with
    ``calibration_<run>.png`` and ``shifts_<run>.png`` drawn when ``figures``."""
    from equiscale.continuum.uncertainty import committee_table, evaluate_fluid_committee

    result = evaluate_fluid_committee(committee, record, data, rollout, out, calibration, shifts,
                                      **shift_options)
    result["calibrated_on"] = str(calibrated_on)
    result["text"] = (f"\n## Uncertainty of {name} (committee of {result['members']})\n\nPrediction: the mean of the "
                      f"members' own rollouts; uncertainty: the per-pixel spread over them, times one scale factor "
                      f"x{result['scale']:.3g} fitted on {calibrated_on} ({rollout}-step rollouts, maximum likelihood, "
                      f"Gaussian). RMSE and spread per pixel over every rollout step; Spearman: rank correlation "
                      f"of spread and absolute error per pixel.\n\n{committee_table(result)}\n")
    if figures:
        from equiscale.continuum import plots
        from equiscale.uncertainty.calibration import calibration_plot

        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        calibration_plot({row["name"]: row["metrics"]["calibration"] for row in result["rows"]},
                         out / f"calibration_{safe}.png", title=f"{name}: pixels binned by committee spread")
        plots.plot_shifts(result, out / f"shifts_{safe}.png", title=f"{name}: error and calibrated uncertainty")
    return result


def _draw(out: Path, rows: list[dict], curves: dict[str, np.ndarray], physics: dict[str, Any], truth: np.ndarray,
          frame0: dict[str, Tensor], rollout: int, persistence: dict[str, float]) -> None:
    from equiscale.continuum import plots

    shown = sorted({0, 5, 10, rollout})
    for name, predicted in frame0.items():
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        plots.plot_rollout(truth[:3], predicted[:3].numpy(), shown, out / f"rollout_{safe}.png", title=name)
    drawn, styles = _grouped_curves(rows, curves)
    plots.plot_error_curves(drawn, out / "rollout_error.png", title="rollout error", styles=styles)
    plots.plot_spectra(physics, out / "spectra.png")
    plots.plot_enstrophy(physics, out / "enstrophy.png")
    if len({r["fraction"] for r in rows}) > 1:
        plots.plot_data_efficiency(rows, out / "data_efficiency.png", metric=f"rollout_{rollout}",
                                   reference=persistence[f"rollout_{rollout}"])
