"""The 2D velocity demonstration: a C(8)-steerable CNN on velocity against the C(4) G-CNN and a plain CNN.

:func:`run_velocity_demo` trains, for the same CPU-time budget on the same trajectories, a
``C(8)``-steerable CNN on velocity (vector in, vector out), the ``C(4)`` G-CNN on vorticity
(:class:`~equiscale.continuum.models.FluidGCNN`, its predictions turned into velocity) and a plain
CNN on velocity of about the same parameter count, then measures one-step and rollout errors of
velocity on held-out trajectories and the equivariance errors under quarter turns and under
arbitrary angles (:func:`~.rotation_error.angle_equivariance_2d`). Figures: :mod:`.plots`.

Every model starts from the same data-dependent initialisation (:func:`~.models.calibrate`: each
convolution scaled to unit output RMS on 8 training inputs) and is trained by :func:`.runs.fit`
(budgets are CPU seconds of this process by default, ``clock="process"``). Writes ``report.md``,
``metrics.json`` and PNG figures (matplotlib) to its folder.

Arbitrary rotations do not map the grid onto itself, so they are measured on an analytic input (a
few Gaussian vortices near the centre) that is rotated exactly, and the rotated output of the
unrotated input is read off between grid points by Fourier interpolation, at interior points
only. The same measurement on a map that is exactly equivariant in the continuum (the spectral
velocity of the vorticity) gives the floor of the method; on the flow solver's own step it shows
how symmetric the data are on this grid.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from equiscale.fields.models import calibrate, count_parameters
from equiscale.fields.plots import plot_angles, plot_velocity_rollout
from equiscale.fields.rotation_error import angle_equivariance_2d
from equiscale.fields.runs import check_runs, fit, is_main, markdown_table, on_main, seeded, write_json
from equiscale.fields.velocity_field import rotate_vector_field, velocity_from_vorticity
from equiscale.train import CheckpointHeader

__all__ = ["VelocitySettings", "VELOCITY_QUICK", "VELOCITY_DEMO", "VELOCITY_FULL", "VELOCITY_MODELS",
           "run_velocity_demo"]


@dataclass(frozen=True)
class VelocitySettings:
    """Sizes and budgets of the velocity demo (``max_time``: seconds per model on ``clock``)."""

    max_time: float = 60.0
    epochs: int | None = 1_000_000  # None: until max_time
    group: str = "C8"
    width: int = 4  # C(8) regular fields; the G-CNN and the CNN get about the same parameter count
    blocks: int = 2
    kernel_size: int = 5
    batch_size: int = 8
    lr: float = 2e-3
    rollout: int = 10
    clock: str = "process"
    ema_decay: float | None = None  # a moving average of the weights (None: none)
    seed: int = 0
    quick: bool = False



VELOCITY_FULL = VelocitySettings()
VELOCITY_DEMO = VelocitySettings(max_time=25.0)  # `equiscale demo`: under 90 s of training
VELOCITY_QUICK = VelocitySettings(max_time=2.0, epochs=2, width=1, blocks=1, kernel_size=5, quick=True)


VELOCITY_MODELS = {"steerable": "C(8)-steerable CNN on velocity", "gcnn": "C(4) G-CNN on vorticity",
                   "cnn": "CNN on velocity"}


def _velocity_labels(group: str) -> dict[str, str]:
    """:data:`VELOCITY_MODELS` with the steerable model's group (``C8`` -> ``C(8)``, ``SO2`` -> ``SO(2)``)."""
    name = group.upper().replace("(", "").replace(")", "")
    pretty = f"{name[:-1]}({name[-1]})" if name.startswith("SO") else f"{name[0]}({name[1:]})"
    return {**VELOCITY_MODELS, "steerable": f"{pretty}-steerable CNN on velocity"}


def _split_trajectories(count: int) -> tuple[list[int], list[int], list[int]]:
    """``(train, validation, test)``: the last ``round(count / 6)`` trajectories (at least one) for test, the
    ``round(count / 12)`` before them (at least one) for validation, the rest for training."""
    if count < 3:
        raise ValueError(f"the velocity demo needs at least 3 trajectories (training, validation, test), got {count}")
    test = max(1, round(count / 6))
    val = max(1, round(count / 12))
    return list(range(count - test - val)), list(range(count - test - val, count - test)), list(range(count - test, count))


def _pairs(frames: Tensor, ids: list[int]) -> tuple[Tensor, Tensor]:
    """Consecutive frames ``(t, t + 1)`` of the trajectories ``ids`` of ``[N, T + 1, ...]``, flattened."""
    return frames[ids, :-1].flatten(0, 1), frames[ids, 1:].flatten(0, 1)


class _View:
    """One trained model seen as a velocity stepper: its state (velocity, or vorticity for the G-CNN),
    its step, and the velocity of a state."""

    def __init__(self, name: str, model: torch.nn.Module, domain_size: float) -> None:
        self.name, self.model, self.domain_size = name, model, domain_size
        self.on_vorticity = name == "gcnn"

    def initial(self, w: Tensor, u: Tensor) -> Tensor:
        return w if self.on_vorticity else u

    def velocity(self, state: Tensor) -> Tensor:
        if not self.on_vorticity:
            return state
        return velocity_from_vorticity(state.double(), self.domain_size).to(state.dtype)

    @torch.no_grad()
    def rollout(self, w: Tensor, u: Tensor, steps: int, batch_size: int = 32) -> Tensor:
        """Velocity ``(B, steps + 1, 2, R, R)`` along ``steps`` model steps from ``(w, u)``."""
        chunks = []
        for start in range(0, w.shape[0], batch_size):
            state = self.initial(w[start:start + batch_size], u[start:start + batch_size])
            frames = [self.velocity(state)]
            for _ in range(steps):
                state = self.model(state)
                frames.append(self.velocity(state))
            chunks.append(torch.stack(frames, 1))
        return torch.cat(chunks)

    @torch.no_grad()
    def increment(self, u: Tensor, w: Tensor) -> Tensor:
        """The predicted velocity increment ``(2, R, R)`` float64 of float64 inputs ``(1, 2, R, R)``, ``(1, R, R)``."""
        if self.on_vorticity:
            w32 = w.float()
            return velocity_from_vorticity((self.model(w32).double() - w32.double())[0], self.domain_size)
        u32 = u.float()
        return (self.model(u32).double() - u32.double())[0]


def _relative(prediction: Tensor, truth: Tensor) -> Tensor:
    return (prediction - truth).flatten(-3).norm(dim=-1) / truth.flatten(-3).norm(dim=-1).clamp_min(1e-30)


@torch.no_grad()
def _evaluate_velocity(view: _View, w: Tensor, u: Tensor, steps: int) -> tuple[dict[str, Any], np.ndarray, Tensor]:
    """One-step error, rollout curve, quarter-turn equivariance (1 and ``steps`` steps) on test trajectories."""
    pairs_w, pairs_u = w[:, :-1].flatten(0, 1), u[:, :-1].flatten(0, 1)
    one_step = _relative(view.rollout(pairs_w, pairs_u, 1)[:, 1], u[:, 1:].flatten(0, 1))
    starts = list(range(0, w.shape[1] - steps, steps))
    w0 = torch.cat([w[:, s] for s in starts])
    u0 = torch.cat([u[:, s] for s in starts])
    truth = torch.cat([u[:, s:s + steps + 1] for s in starts])
    predicted = view.rollout(w0, u0, steps)
    curve = _relative(predicted[:, 1:], truth[:, 1:]).mean(0).numpy()
    row = {"one_step": float(one_step.mean()), f"rollout_{steps}": float(curve[-1])}
    for n in sorted({1, steps}):
        count = min(4, w0.shape[0])
        reference = view.rollout(w0[:count], u0[:count], n)[:, -1].double()
        worst = 0.0
        for k in (1, 2, 3):
            moved = view.rollout(torch.rot90(w0[:count], k, dims=(-1, -2)), rotate_vector_field(u0[:count], k), n)
            error = (moved[:, -1].double() - rotate_vector_field(reference, k)).abs().max() / reference.abs().max()
            worst = max(worst, float(error))
        row[f"equivariance_90_{n}"] = worst
    return row, curve, predicted


def _velocity_models(settings: VelocitySettings, scales: dict[str, float]) -> dict[str, tuple[dict[str, Any], Callable]]:
    """Model settings (saved with the checkpoints) and builders; the G-CNN and the CNN get the steerable model's
    parameter count."""
    from equiscale.continuum.models import FluidGCNN
    from equiscale.fields.models import SteerableVelocityNet, VelocityCNN, match_width

    common = {"blocks": settings.blocks, "kernel_size": settings.kernel_size}
    steerable = {"group": settings.group, "width": settings.width, **common}
    target = count_parameters(SteerableVelocityNet(**steerable))
    gcnn = {"group": "C4", "width": match_width(lambda k: FluidGCNN("C4", k, **common), target), **common}
    cnn = {"width": match_width(lambda k: VelocityCNN(k, **common), target), **common}
    velocity = {"field_scale": scales["velocity"], "delta_scale": scales["velocity_increment"]}
    vorticity = {"field_scale": scales["vorticity"], "delta_scale": scales["vorticity_increment"]}
    return {"steerable": ({**steerable, **velocity}, SteerableVelocityNet),
            "gcnn": ({**gcnn, **vorticity}, FluidGCNN),
            "cnn": ({**cnn, **velocity}, VelocityCNN)}


def _small_fluid(path: Path, quick: bool, seed: int, progress: bool) -> Path:
    from equiscale.continuum.data import generate_fluid

    path.parent.mkdir(parents=True, exist_ok=True)
    if quick:
        generate_fluid(path, trajectories=5, steps=8, resolution=12, viscosity=1e-2, seed=seed, progress=progress)
    else:
        generate_fluid(path, trajectories=24, steps=30, resolution=32, viscosity=1e-2, seed=seed, progress=progress)
    return path


def run_velocity_demo(out_dir: str | os.PathLike, *, quick: bool, seed: int = 0, progress: bool = True,
                      data: str | os.PathLike | None = None, max_time: float | None = None, resume: bool = False,
                      settings: VelocitySettings | None = None, header_settings: dict[str, Any] | None = None,
                      epoch_lines: bool | None = None, figures: bool = True) -> dict[str, Any] | None:
    """Train and compare the velocity models on a fluid ``.npz`` (``data``; simulated into ``out_dir`` if None).

    Quick: tiny sizes (a few seconds); otherwise :data:`VELOCITY_DEMO` (under 90 s of training; the
    simulation of 24 trajectories of 32x32 takes a few more) unless ``settings``/``max_time`` say otherwise.

    Writes ``report.md``, ``metrics.json`` and (unless ``figures=False``) ``velocity_rollout.png``, ``velocity_rollout_error.png`` and
    ``velocity_equivariance_angles.png`` to ``out_dir``, one run folder per model. Returns
    ``{"markdown", "figures", "rows"}`` with ``rows`` = ``dict(model, error (rollout), equivariance (90 degrees,
    one step), ...)``.

    Each checkpoint's header (kind ``"velocity"``) holds ``header_settings`` (the command's settings;
    default: the demo settings used) and, as statistics, the data scales, the resolution and the
    domain size. ``progress`` shows progress bars, ``epoch_lines`` (default: as ``progress``) one line
    per epoch.

    Under torchrun rank 0 simulates the data (when ``data`` is None) while the others wait, then
    every process trains the models together (:func:`.runs.fit`); rank 0 alone evaluates, writes the
    report and returns the result, the others return None.
    """
    from equiscale.continuum import plots
    from equiscale.continuum.data import load_fluid
    from equiscale.continuum.simulate import simulate_vorticity

    out = Path(out_dir)
    settings = settings or (VELOCITY_QUICK if quick else VELOCITY_DEMO)
    settings = replace(settings, seed=seed, **({} if max_time is None else {"max_time": float(max_time)}))
    if data is None:
        data = out / "fluid.npz"
        if not (resume and data.exists()):
            on_main(lambda: _small_fluid(data, settings.quick, seed, progress))
    fluid = load_fluid(data)
    steps = min(settings.rollout, fluid.frames - 1)
    train_ids, val_ids, test_ids = _split_trajectories(fluid.trajectories)
    w = torch.from_numpy(np.ascontiguousarray(fluid.vorticity))
    u = torch.cat([velocity_from_vorticity(w[i:i + 8].double(), fluid.domain_size).float() for i in range(0, len(w), 8)])
    train_w, train_u = w[train_ids], u[train_ids]
    scales = {"velocity": float(train_u.std()), "velocity_increment": float((train_u[:, 1:] - train_u[:, :-1]).std()),
              "vorticity": float(train_w.std()), "vorticity_increment": float((train_w[:, 1:] - train_w[:, :-1]).std())}
    if not all(v > 0 for v in scales.values()):
        raise ValueError(f"{data}: the training trajectories are constant in space or time; nothing to learn")
    models = _velocity_models(settings, scales)
    record = {"data": str(data), "settings": asdict(settings), "models": {k: v[0] for k, v in models.items()},
              "train_trajectories": train_ids, "validation_trajectories": val_ids, "test_trajectories": test_ids}
    check_runs(out, list(models), record, resume)

    statistics = {**scales, "resolution": fluid.resolution, "domain_size": fluid.domain_size}
    checkpoint_header = CheckpointHeader("velocity", header_settings or asdict(settings), statistics, "float32")
    labels = _velocity_labels(settings.group)
    views, summaries = {}, {}
    for name, (model_settings, cls) in models.items():
        model = seeded(seed, cls, model_settings)
        source = w if name == "gcnn" else u
        calibrate(model, source[train_ids[:8], 0])
        scale = model_settings["delta_scale"]
        extra = {"kind": "velocity", "model": name, "settings": model_settings}
        summaries[name] = fit(labels[name], model, _pairs(source, train_ids), _pairs(source, val_ids), scale,
                              out / name, settings, extra, resume, progress, checkpoint_header, epoch_lines)
        summaries[name]["parameters"] = count_parameters(model)
        views[name] = _View(name, model, fluid.domain_size)
    if not is_main():
        return None

    test_w, test_u = w[test_ids], u[test_ids]
    angles = [0.0, 45.0, 90.0] if settings.quick else [7.5 * i for i in range(13)]
    speed = float(test_u[:, 0].norm(dim=1).flatten(1).max(1).values.median())
    rows, curves, examples, angle_curves = [], {}, {}, {}
    for name, view in views.items():
        row, curve, predicted = _evaluate_velocity(view, test_w, test_u, steps)
        angle_curves[labels[name]] = angle_equivariance_2d(view.increment, fluid.resolution, fluid.domain_size,
                                                                     [math.radians(a) for a in angles], speed)
        summary = summaries[name]
        row.update(model=name, label=labels[name], parameters=summary["parameters"], steps=summary["steps"],
                   train_time=summary["train_time"], epochs=summary["epochs"],
                   equivariance_45=angle_curves[labels[name]][angles.index(45.0)])
        rows.append(row)
        curves[labels[name]] = curve
        examples[labels[name]] = predicted[0].numpy()
    starts = list(range(0, test_w.shape[1] - steps, steps))
    truth = torch.cat([test_u[:, s:s + steps + 1] for s in starts])
    persistence = _relative(truth[:, :1].expand_as(truth[:, 1:]), truth[:, 1:]).mean(0).numpy()
    persistence_one = float(_relative(test_u[:, :-1], test_u[:, 1:]).mean())
    radians = [math.radians(a) for a in angles]
    floor_label = "floor: spectral velocity of the input vorticity"
    angle_curves[floor_label] = angle_equivariance_2d(lambda u_, w_: velocity_from_vorticity(w_[0], fluid.domain_size),
                                                      fluid.resolution, fluid.domain_size, radians, speed)
    references = (floor_label,)
    if math.isfinite(fluid.dt) and math.isfinite(fluid.viscosity):
        solver_label = "reference: the flow solver's own step"

        def solver(u_: Tensor, w_: Tensor) -> Tensor:
            moved = simulate_vorticity(w_, fluid.dt, 1, fluid.viscosity, fluid.domain_size)[:, 1]
            return velocity_from_vorticity((moved - w_)[0], fluid.domain_size)

        angle_curves[solver_label] = angle_equivariance_2d(solver, fluid.resolution, fluid.domain_size, radians, speed)
        references += (solver_label,)

    paths = [out / "velocity_rollout.png", out / "velocity_rollout_error.png", out / "velocity_equivariance_angles.png"]
    if figures:
        marks = sorted({1, max(1, steps // 2), steps})
        plot_velocity_rollout(truth[0].numpy(), examples, marks, paths[0], streamlines=not settings.quick)
        plots.plot_error_curves({**curves, "persistence (no change)": persistence}, paths[1],
                                title="velocity rollout error on held-out trajectories",
                                styles={label: (label, "") for label in curves})
        plot_angles(angles, angle_curves, paths[2], "velocity increment: equivariance error vs angle (analytic "
                    "vortices)", references=references)

    header = ["model", "parameters", "train steps (epochs)", f"train time ({settings.clock} s)", "one-step rel. L2",
              f"rollout {steps} rel. L2", "equiv. 90 deg, 1 step", f"equiv. 90 deg, {steps} steps",
              "equiv. 45 deg (interior)"]
    table = [[r["label"], str(r["parameters"]), f"{r['steps']} ({r['epochs']})", f"{r['train_time']:.0f}",
              f"{r['one_step']:.4f}", f"{r[f'rollout_{steps}']:.4f}", f"{r['equivariance_90_1']:.1e}",
              f"{r[f'equivariance_90_{steps}']:.1e}", f"{r['equivariance_45']:.1e}"] for r in rows]
    table.append(["persistence (no change)", "0", "-", "-", f"{persistence_one:.4f}", f"{persistence[-1]:.4f}", "0",
                  "0", "-"])
    table += [[label, "-", "-", "-", "-", "-", "-", "-", f"{angle_curves[label][angles.index(45.0)]:.1e}"]
              for label in references]
    at45 = {label: angle_curves[label][angles.index(45.0)] for label in references}
    floor = (f" The same measurement of the spectral velocity of the input's vorticity (exactly equivariant: only the "
             f"interpolation is measured) gives {at45[floor_label]:.1e} at 45 degrees, the floor of the method.")
    if len(references) > 1:
        floor += (f" The pseudo-spectral solver's own step, rotation-equivariant in the continuum but discretised on "
                  f"this grid (a square dealiasing mask), gives {at45[references[1]]:.1e}: the data itself is only "
                  f"that symmetric at 45 degrees.")
    markdown = (
        f"Velocity one step ahead, {fluid.resolution}x{fluid.resolution} periodic flow from {data} "
        f"({len(train_ids)} training, {len(val_ids)} validation, {len(test_ids)} held-out test trajectories of "
        f"{fluid.frames} frames, dt={fluid.dt:g}). Each model trained for {settings.max_time:g} s of "
        f"{settings.clock} time (Adam, convolutions first scaled to unit output RMS on training inputs), best validation "
        f"epoch kept. Errors are relative L2 norms of the velocity field on the "
        f"test trajectories (the G-CNN predicts vorticity, converted to velocity spectrally); rollouts of {steps} "
        f"steps start every {steps} frames.\n\n{markdown_table(header, table)}\n\n"
        f"Equivariance errors are max|f(g.x) - g.f(x)| / max|f(x)| in float32. Quarter turns map the grid onto itself and "
        f"are measured on test inputs exactly. Other angles do not, so they are measured on an analytic input (three "
        f"Gaussian vortices near the centre, velocity and vorticity from their stream function, rotated exactly, "
        f"speed scaled to the test data's) on the predicted increment f(x) - x, with g.f(x) read between grid points "
        f"by Fourier interpolation, at points within 0.3 of the box of the centre.{floor}\n")
    if figures:
        markdown += ("\n![rollout](velocity_rollout.png)\n\n![rollout error](velocity_rollout_error.png)\n\n"
                     "![equivariance against angle](velocity_equivariance_angles.png)\n")
    (out / "report.md").write_text("# Steerable demo: 2D velocity\n\n" + markdown)
    write_json(out / "metrics.json", {"rows": rows, "persistence": {"one_step": persistence_one,
                                                                       "curve": persistence.tolist()},
                                       "curves": {k: v.tolist() for k, v in curves.items()},
                                       "angles": angles, "angle_curves": angle_curves, "record": record})
    summary_rows = [{"model": r["label"], "error": r[f"rollout_{steps}"], "equivariance": r["equivariance_90_1"],
                     "one_step": r["one_step"], "equivariance_45": r["equivariance_45"], "parameters": r["parameters"]}
                    for r in rows]
    return {"markdown": markdown, "figures": paths if figures else [], "rows": summary_rows}

