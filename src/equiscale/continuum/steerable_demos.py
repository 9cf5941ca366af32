"""The steerable demonstrations: 2D velocity fields and 3D electrostatics, each trained, measured and reported.

:func:`run_velocity_demo` trains, for the same CPU-time budget on the same trajectories, a
``C(8)``-steerable CNN on velocity (vector in, vector out), the ``C(4)`` G-CNN on vorticity
(:class:`~equiscale.continuum.models.FluidGCNN`, its predictions turned into velocity) and a plain
CNN on velocity of about the same parameter count, then measures one-step and rollout errors of
velocity on held-out trajectories and the equivariance errors under quarter turns and under
arbitrary angles (:func:`~.rotation_error.angle_equivariance_2d`).

:func:`run_efield_demo` trains an ``SO(3)``-steerable CNN and plain 3D CNNs to map a periodic charge
density to its electric field (:mod:`.electrostatics`), then measures the held-out error and the
equivariance under the 24 rotations of the cube and under random rotations
(:func:`~.rotation_error.rotation_error_3d`). Figures: :mod:`.steerable_plots`.

Every model starts from the same data-dependent initialisation (:func:`~.steerable_models.calibrate`:
each convolution scaled to unit output RMS on 8 training inputs). Training uses
:class:`equiscale.train.Trainer` (``last.pt``/``best.pt``/``history.json`` per model, ``resume``),
Adam with the learning rate halved after 3 epochs without improvement, gradients clipped at 1;
budgets are CPU seconds of this process by default (``clock="process"``). Both write
``report.md``, ``metrics.json`` and PNG figures (matplotlib) to their folder and
return ``{"markdown", "figures", "rows"}``.

Arbitrary rotations do not map the grid onto itself, so they are measured on an analytic input (a
few Gaussian vortices / charge blobs near the centre) that is rotated exactly, and the rotated
output of the unrotated input is read off between grid points by Fourier interpolation, at interior
points only. The same measurement on a map that is exactly equivariant in the continuum (the
spectral velocity of the vorticity, the spectral gradient of the density) gives the floor of the
method; on the physics itself (the flow solver's step, the exact periodic field) it shows how
symmetric the data are on this grid.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from equiscale.continuum.steerable_models import calibrate, count_parameters
from equiscale.continuum.rotation_error import (_axis_angle, _spectral_gradient, analytic_charges, analytic_flow,
                                                angle_equivariance_2d, cube_rotations, fourier_interpolate,
                                                rotation_error_3d)
from equiscale.continuum.steerable_plots import _plot_angles, _plot_efield_slice, _plot_velocity_rollout
from equiscale.continuum.velocity_field import rotate_vector_field, velocity_from_vorticity
from equiscale.train import Trainer, TrainerConfig, load_checkpoint, write_line

__all__ = ["VelocitySettings", "EfieldSettings", "VELOCITY_QUICK", "VELOCITY_DEMO", "VELOCITY_FULL", "EFIELD_QUICK",
           "EFIELD_DEMO", "EFIELD_FULL", "run_velocity_demo", "run_efield_demo", "fourier_interpolate",
           "angle_equivariance_2d", "rotation_error_3d", "cube_rotations", "analytic_flow", "analytic_charges"]


@dataclass(frozen=True)
class VelocitySettings:
    """Sizes and budgets of the velocity demo (``max_time``: seconds per model on ``clock``)."""

    max_time: float = 60.0
    epochs: int = 1_000_000
    group: str = "C8"
    width: int = 4  # C(8) regular fields; the G-CNN and the CNN get about the same parameter count
    blocks: int = 2
    kernel_size: int = 5
    batch_size: int = 8
    lr: float = 2e-3
    rollout: int = 10
    clock: str = "process"
    seed: int = 0
    quick: bool = False


@dataclass(frozen=True)
class EfieldSettings:
    """Sizes and budgets of the electrostatics demo."""

    samples: int = 512
    resolution: int = 16
    box_size: float = 1.0
    max_time: float = 60.0
    epochs: int = 1_000_000
    multiplicities: tuple[int, int, int] = (4, 4, 2)  # SO(3) scalars, vectors, l=2 fields
    blocks: int = 1
    kernel_size: int = 5
    batch_size: int = 4
    lr: float = 3e-3
    random_rotations: int = 8
    clock: str = "process"
    seed: int = 0
    quick: bool = False


VELOCITY_FULL = VelocitySettings()
VELOCITY_DEMO = VelocitySettings(max_time=25.0)  # `equiscale demo`: under 90 s of training
VELOCITY_QUICK = VelocitySettings(max_time=2.0, epochs=2, width=1, blocks=1, kernel_size=5, quick=True)
EFIELD_FULL = EfieldSettings()
EFIELD_DEMO = EfieldSettings(samples=256, max_time=25.0)  # `equiscale demo`: under 90 s of training
EFIELD_QUICK = EfieldSettings(samples=12, resolution=8, max_time=2.0, epochs=2, multiplicities=(2, 2, 1),
                              kernel_size=5, random_rotations=2, quick=True)


# --- shared: training ------------------------------------------------------------------------------
def _pair_step(scale: float) -> Callable:
    """Step function on ``(input, target)`` batches: MSE in units of ``scale``, plus the relative L2 error."""

    def step(model: torch.nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        x, y = batch
        prediction = model(x)
        loss = ((prediction - y) / scale).square().mean()
        relative = (prediction.detach() - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1).clamp_min(1e-30)
        return loss, {"rel_l2": float(relative.mean())}

    return step


def _check_runs(out: Path, names: list[str], record: dict[str, Any], resume: bool) -> None:
    """Refuse to overwrite finished runs, or to resume runs made with other settings."""
    config = out / "config.json"
    existing = [name for name in names if (out / name / "last.pt").exists()]
    if resume and config.exists():
        def fixed(values: dict[str, Any]) -> dict[str, Any]:  # the budget may change when resuming
            settings = {k: v for k, v in values.get("settings", {}).items() if k not in ("max_time", "epochs")}
            return {**values, "settings": settings}

        saved, current = fixed(json.loads(config.read_text())), fixed(json.loads(json.dumps(record)))
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise ValueError(f"cannot resume {out} with different settings or data: {', '.join(changed)} differ from "
                             f"the saved {config}")
    elif existing and not resume:
        raise ValueError(f"{out} already holds training runs ({', '.join(existing)}): pass --resume to continue them "
                         f"or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".config.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, config)


def _fit(name: str, model: torch.nn.Module, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], scale: float,
         folder: Path, settings: Any, extra: dict[str, Any], resume: bool, progress: bool) -> dict[str, Any]:
    """Train ``model`` with the shared Trainer into ``folder``; load its best weights; return the summary."""
    train_loader = DataLoader(TensorDataset(*train), batch_size=settings.batch_size, shuffle=True)
    val_loader = DataLoader(TensorDataset(*val), batch_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    config = TrainerConfig(max_epochs=settings.epochs, max_time=settings.max_time, seed=settings.seed,
                           progress=progress, grad_clip=1.0, clock=settings.clock)
    if progress:
        write_line(f"training {name}: {count_parameters(model)} parameters, {settings.max_time:g} s "
                   f"({settings.clock} clock)")
    trainer = Trainer(model, optimizer, _pair_step(scale), train_loader, folder, config, val_data=val_loader,
                      scheduler=scheduler, extra={**extra, "name": name})
    summary = trainer.fit(resume=resume and (folder / "last.pt").exists())
    if (folder / "best.pt").exists():
        model.load_state_dict(load_checkpoint(folder / "best.pt")["model"])
    model.eval()
    return summary


def _seeded(seed: int, cls: Callable[..., torch.nn.Module], settings: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(**settings)


def _pairs(frames: Tensor, ids: list[int]) -> tuple[Tensor, Tensor]:
    """Consecutive frames ``(t, t + 1)`` of the trajectories ``ids`` of ``[N, T + 1, ...]``, flattened."""
    return frames[ids, :-1].flatten(0, 1), frames[ids, 1:].flatten(0, 1)


# --- shared: measuring equivariance at any angle --------------------------------------------------------
def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float))
    os.replace(tmp, path)

# --- figures ----------------------------------------------------------------------------------------
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
    from equiscale.continuum.steerable_models import SteerableVelocityNet, VelocityCNN, match_width

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

    if quick:
        generate_fluid(path, trajectories=5, steps=8, resolution=12, viscosity=1e-2, seed=seed, progress=progress)
    else:
        generate_fluid(path, trajectories=24, steps=30, resolution=32, viscosity=1e-2, seed=seed, progress=progress)
    return path


def run_velocity_demo(out_dir: str | os.PathLike, *, quick: bool, seed: int = 0, progress: bool = True,
                      data: str | os.PathLike | None = None, max_time: float | None = None, resume: bool = False,
                      settings: VelocitySettings | None = None) -> dict[str, Any]:
    """Train and compare the velocity models on a fluid ``.npz`` (``data``; simulated into ``out_dir`` if None).

    Quick: tiny sizes (a few seconds); otherwise :data:`VELOCITY_DEMO` (under 90 s of training; the
    simulation of 24 trajectories of 32x32 takes a few more) unless ``settings``/``max_time`` say otherwise.

    Writes ``report.md``, ``metrics.json``, ``velocity_rollout.png``, ``velocity_rollout_error.png`` and
    ``velocity_equivariance_angles.png`` to ``out_dir``, one run folder per model. Returns
    ``{"markdown", "figures", "rows"}`` with ``rows`` = ``dict(model, error (rollout), equivariance (90 degrees,
    one step), ...)``.
    """
    from equiscale.continuum import plots
    from equiscale.continuum.data import load_fluid
    from equiscale.continuum.simulate import simulate_vorticity

    out = Path(out_dir)
    settings = settings or (VELOCITY_QUICK if quick else VELOCITY_DEMO)
    settings = replace(settings, seed=seed, **({} if max_time is None else {"max_time": float(max_time)}))
    if data is None:
        out.mkdir(parents=True, exist_ok=True)
        data = out / "fluid.npz"
        if not (resume and data.exists()):
            _small_fluid(data, settings.quick, seed, progress)
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
    _check_runs(out, list(models), record, resume)

    labels = _velocity_labels(settings.group)
    views, summaries = {}, {}
    for name, (model_settings, cls) in models.items():
        model = _seeded(seed, cls, model_settings)
        source = w if name == "gcnn" else u
        calibrate(model, source[train_ids[:8], 0])
        scale = model_settings["delta_scale"]
        extra = {"kind": "velocity", "model": name, "settings": model_settings}
        summaries[name] = _fit(labels[name], model, _pairs(source, train_ids), _pairs(source, val_ids), scale,
                               out / name, settings, extra, resume, progress)
        summaries[name]["parameters"] = count_parameters(model)
        views[name] = _View(name, model, fluid.domain_size)

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

    figures = [out / "velocity_rollout.png", out / "velocity_rollout_error.png", out / "velocity_equivariance_angles.png"]
    marks = sorted({1, max(1, steps // 2), steps})
    _plot_velocity_rollout(truth[0].numpy(), examples, marks, figures[0], streamlines=not settings.quick)
    plots.plot_error_curves({**curves, "persistence (no change)": persistence}, figures[1],
                            title="velocity rollout error on held-out trajectories",
                            styles={label: (label, "") for label in curves})
    _plot_angles(angles, angle_curves, figures[2], "velocity increment: equivariance error vs angle (analytic vortices)",
                 references=references)

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
        f"steps start every {steps} frames.\n\n{_markdown_table(header, table)}\n\n"
        f"Equivariance errors are max|f(g.x) - g.f(x)| / max|f(x)| in float32. Quarter turns map the grid onto itself and "
        f"are measured on test inputs exactly. Other angles do not, so they are measured on an analytic input (three "
        f"Gaussian vortices near the centre, velocity and vorticity from their stream function, rotated exactly, "
        f"speed scaled to the test data's) on the predicted increment f(x) - x, with g.f(x) read between grid points "
        f"by Fourier interpolation, at points within 0.3 of the box of the centre.{floor}\n\n"
        f"![rollout](velocity_rollout.png)\n\n![rollout error](velocity_rollout_error.png)\n\n"
        f"![equivariance against angle](velocity_equivariance_angles.png)\n")
    (out / "report.md").write_text("# Steerable demo: 2D velocity\n\n" + markdown)
    _write_json(out / "metrics.json", {"rows": rows, "persistence": {"one_step": persistence_one,
                                                                       "curve": persistence.tolist()},
                                       "curves": {k: v.tolist() for k, v in curves.items()},
                                       "angles": angles, "angle_curves": angle_curves, "record": record})
    summary_rows = [{"model": r["label"], "error": r[f"rollout_{steps}"], "equivariance": r["equivariance_90_1"],
                     "one_step": r["one_step"], "equivariance_45": r["equivariance_45"], "parameters": r["parameters"]}
                    for r in rows]
    return {"markdown": markdown, "figures": figures, "rows": summary_rows}


# --- electrostatics ---------------------------------------------------------------------------------
EFIELD_MODELS = {"steerable": "SO(3)-steerable CNN", "cnn": "CNN, same parameters", "cnn-wide": "CNN, same width"}


def _efield_models(settings: EfieldSettings, scales: dict[str, float]) -> dict[str, tuple[dict[str, Any], Callable]]:
    from equiscale.continuum.steerable_models import EfieldCNN, SteerableEfieldNet, match_width

    common = {"blocks": settings.blocks, "kernel_size": settings.kernel_size, **scales}
    steerable = {"multiplicities": list(settings.multiplicities), **common}
    target = count_parameters(SteerableEfieldNet(**steerable))
    s, v, t = settings.multiplicities
    return {"steerable": (steerable, SteerableEfieldNet),
            "cnn": ({"width": match_width(lambda k: EfieldCNN(k, **common), target), **common}, EfieldCNN),
            "cnn-wide": ({"width": s + 3 * v + 5 * t, **common}, EfieldCNN)}


def _cube_error(model: torch.nn.Module, rho: Tensor) -> float:
    """``max_g |f(g.rho) - g.f(rho)| / max|f(rho)|`` over the 23 non-trivial rotations of the cube."""
    from equiscale.groups import SO3
    from equiscale.testing import GridField

    group, scalar, vector = SO3(), GridField(None, ndim=3), GridField(SO3().irrep(1), axis=-4, ndim=3)
    with torch.no_grad():
        reference = model(rho)
        worst = 0.0
        for g in cube_rotations()[1:]:
            moved = model(scalar.apply(group, g, rho.double(), None).to(rho.dtype)).double()
            expected = vector.apply(group, g, reference.double(), None)
            worst = max(worst, float((moved - expected).abs().max() / reference.abs().max()))
    return worst


def run_efield_demo(out_dir: str | os.PathLike, *, quick: bool, seed: int = 0, progress: bool = True,
                    samples: int | None = None, resolution: int | None = None, max_time: float | None = None,
                    resume: bool = False, settings: EfieldSettings | None = None) -> dict[str, Any]:
    """Train and compare the SO(3)-steerable CNN and plain CNNs on ``rho -> E`` (periodic 3D electrostatics).

    Quick: tiny sizes (< 30 s in all); otherwise :data:`EFIELD_DEMO` (under 90 s of training) unless
    ``settings``/``samples``/``resolution``/``max_time`` say otherwise. Writes ``report.md``,
    ``metrics.json``, ``efield_slice.png`` and ``efield_equivariance_angles.png`` to ``out_dir``;
    returns ``{"markdown", "figures", "rows", "models", "resolution", "box_size"}`` with ``rows`` =
    ``dict(model, error, equivariance (cube rotations), equivariance_random, ...)`` and ``models`` the
    trained modules by name.
    """
    from equiscale.continuum.electrostatics import electric_field, random_charge_density
    from equiscale.groups import SO3

    out = Path(out_dir)
    settings = settings or (EFIELD_QUICK if quick else EFIELD_DEMO)
    changes: dict[str, Any] = {"seed": seed}
    for key, value in (("samples", samples), ("resolution", resolution), ("max_time", max_time)):
        if value is not None:
            changes[key] = value
    settings = replace(settings, **changes)
    if settings.samples < 3:
        raise ValueError(f"the electrostatics demo needs at least 3 samples (training, validation, test), got "
                         f"{settings.samples}")
    if settings.resolution < settings.kernel_size:
        raise ValueError(f"resolution {settings.resolution} is smaller than the kernel ({settings.kernel_size})")
    generator = torch.Generator().manual_seed(seed)
    rho64 = random_charge_density(settings.samples, settings.resolution, generator, box_size=settings.box_size)
    field = electric_field(rho64, settings.box_size).float()
    rho = rho64.float()
    n_test = n_val = max(1, round(0.1 * settings.samples))
    train = slice(0, settings.samples - n_test - n_val)
    val = slice(settings.samples - n_test - n_val, settings.samples - n_test)
    test = slice(settings.samples - n_test, settings.samples)
    scales = {"density_scale": float(rho[train].std()), "field_scale": float(field[train].std())}
    models = _efield_models(settings, scales)
    record = {"settings": asdict(settings), "models": {k: v[0] for k, v in models.items()}}
    _check_runs(out, list(models), record, resume)

    trained, summaries = {}, {}
    for name, (model_settings, cls) in models.items():
        model = _seeded(seed, cls, model_settings)
        calibrate(model, rho[train][:8])
        summaries[name] = _fit(EFIELD_MODELS[name], model, (rho[train], field[train]), (rho[val], field[val]),
                               scales["field_scale"], out / name, settings,
                               {"kind": "efield", "model": name, "settings": model_settings}, resume, progress)
        summaries[name]["parameters"] = count_parameters(model)
        trained[name] = model

    amplitude = float(rho[test].flatten(1).abs().max(1).values.median())
    sample = torch.Generator().manual_seed(seed + 1)
    random_rotations = list(SO3().sample(settings.random_rotations, generator=sample))
    angles = [0.0, 45.0, 90.0] if settings.quick else [7.5 * i for i in range(13)]
    about_z = [_axis_angle(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), math.radians(a)) for a in angles]
    rows, predictions, angle_curves = [], {}, {}
    for name, model in trained.items():
        with torch.no_grad():
            predicted = torch.cat([model(rho[test][i:i + 8]) for i in range(0, n_test, 8)])

        def field_map(r: Tensor, model: torch.nn.Module = model) -> Tensor:
            with torch.no_grad():
                return model(r.float())[0]

        random_errors = rotation_error_3d(field_map, settings.resolution, settings.box_size, random_rotations, amplitude)
        angle_curves[EFIELD_MODELS[name]] = rotation_error_3d(field_map, settings.resolution, settings.box_size, about_z,
                                                              amplitude)
        summary = summaries[name]
        rows.append({"model": name, "label": EFIELD_MODELS[name], "parameters": summary["parameters"],
                     "steps": summary["steps"], "epochs": summary["epochs"], "train_time": summary["train_time"],
                     "error": float(_relative_3d(predicted, field[test]).mean()),
                     "equivariance_cube": _cube_error(model, rho[test][:2]),
                     "equivariance_random_max": max(random_errors),
                     "equivariance_random_mean": float(np.mean(random_errors))})
        predictions[EFIELD_MODELS[name]] = predicted[0].numpy()
    floor_label, exact_label = "floor: spectral -grad(rho)", "reference: the exact periodic field"

    def exact(r: Tensor) -> Tensor:
        return electric_field(r[0], settings.box_size)

    floors = {}
    for label, reference in ((floor_label, _spectral_gradient), (exact_label, exact)):
        floors[label] = rotation_error_3d(reference, settings.resolution, settings.box_size, random_rotations,
                                          amplitude)
        angle_curves[label] = rotation_error_3d(reference, settings.resolution, settings.box_size, about_z, amplitude)

    figures = [out / "efield_slice.png", out / "efield_equivariance_angles.png"]
    _plot_efield_slice(rho[test][0].numpy(), field[test][0].numpy(), predictions, figures[0])
    _plot_angles(angles, angle_curves, figures[1], "electric field: equivariance error vs angle about z (analytic blobs)",
                 references=(floor_label, exact_label))
    header = ["model", "parameters", "train steps (epochs)", f"train time ({settings.clock} s)", "test rel. L2 of E",
              "equiv. 24 cube rotations", f"equiv. {settings.random_rotations} random rotations, max (mean)"]
    table = [[r["label"], str(r["parameters"]), f"{r['steps']} ({r['epochs']})", f"{r['train_time']:.0f}",
              f"{r['error']:.4f}", f"{r['equivariance_cube']:.1e}",
              f"{r['equivariance_random_max']:.1e} ({r['equivariance_random_mean']:.1e})"] for r in rows]
    for label, values in floors.items():
        table.append([label, "-", "-", "-", "-", "-", f"{max(values):.1e} ({float(np.mean(values)):.1e})"])
    n_train = train.stop
    markdown = (
        f"Electric field E = -grad(phi), laplacian(phi) = -rho, of random neutral charge densities (4-8 Gaussian "
        f"blobs) on a periodic {settings.resolution}^3 grid; {n_train} training, {n_val} validation and {n_test} held-out "
        f"test samples. Each model trained for {settings.max_time:g} s of {settings.clock} time (Adam, convolutions "
        f"first scaled to unit output RMS on training inputs), best validation epoch kept. The steerable model has hidden SO(3) fields {tuple(settings.multiplicities)} (scalars, vectors, "
        f"l=2) with gated nonlinearities; the CNNs have the same blocks and kernel size {settings.kernel_size}, one "
        f"with about the same parameter count, one with as many hidden channels as the steerable model's fields.\n\n"
        f"{_markdown_table(header, table)}\n\n"
        f"Equivariance errors are max|f(g.rho) - g.f(rho)| / max|f(rho)| in float32. The 24 rotations of the cube map "
        f"the grid onto itself and are measured exactly on two test samples. Random rotations do not, so they are "
        f"measured on an analytic input: three Gaussian charge blobs near the centre, rotated exactly (their centres "
        f"move), scaled to the test densities; the rotated output R f(rho)(R^-1 p) is read between grid points by "
        f"Fourier interpolation and compared at points within 0.3 of the box of the centre. The same measurement of "
        f"the spectral gradient of the density, a local map that is exactly equivariant in the continuum, gives the "
        f"floor of the method; that of the exact solution shows how far the periodic problem itself is from SO(3) "
        f"symmetry (the periodic images of the charges are only cube-symmetric).\n\n![slice](efield_slice.png)\n\n![equivariance against angle]"
        f"(efield_equivariance_angles.png)\n")
    (out / "report.md").write_text("# Steerable demo: 3D electrostatics\n\n" + markdown)
    _write_json(out / "metrics.json", {"rows": rows, "references_random": floors, "angles": angles,
                                       "angle_curves": angle_curves, "record": record})
    summary_rows = [{"model": r["label"], "error": r["error"], "equivariance": r["equivariance_cube"],
                     "equivariance_random": r["equivariance_random_max"], "parameters": r["parameters"]} for r in rows]
    return {"markdown": markdown, "figures": figures, "rows": summary_rows, "models": trained,
            "resolution": settings.resolution, "box_size": settings.box_size}


def _relative_3d(prediction: Tensor, truth: Tensor) -> Tensor:
    return (prediction - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1).clamp_min(1e-30)
