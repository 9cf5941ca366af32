"""The continuum section of ``equiscale demo``: 2D decaying turbulence and four one-step surrogates
trained for the same time.

Simulates training and test trajectories (:func:`equiscale.continuum.data.generate_fluid`), trains
the best equivariant model of the continuum benchmark (:data:`BEST`, ``benchmarks/RESULTS.md``), a small
C(4) G-CNN, a CNN of about the G-CNN's parameter count and the same CNN on randomly rotated windows,
each for the same CPU-time budget (:func:`equiscale.continuum.training.train_fluid`), and evaluates
them on the test trajectories (:func:`equiscale.continuum.evaluate.evaluate_runs`: one-step and
rollout errors, horizons, equivariance under 90-degree rotations, energy spectra, figures).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from equiscale.demo.context import DemoContext, SectionResult, SummaryRow
from equiscale.demo.progress import timed_bar

__all__ = ["ContinuumSettings", "FULL", "QUICK", "MODELS", "section_continuum"]


@dataclass(frozen=True)
class ContinuumSettings:
    """Sizes and budgets of the continuum section."""

    resolution: int
    train_trajectories: int  # including the validation ones
    validation_trajectories: int
    test_trajectories: int
    steps: int  # saved frames after the first, per trajectory
    train_seconds: float  # per model, CPU seconds of the demo's process (fair on a shared machine)
    rollout: int
    width: int = 4  # G-CNN regular fields; the CNNs get about the same parameter count
    best_width: int | None = None  # the best model's regular fields (None: its default)
    modes: int = 8  # Fourier modes per axis of the FNOs (the grid needs 2 modes + 2 points)
    blocks: int = 2
    kernel_size: int = 5
    batch_size: int = 16
    lr: float = 2e-3
    viscosity: float = 1e-2
    dt: float = 0.2


FULL = ContinuumSettings(resolution=32, train_trajectories=14, validation_trajectories=2, test_trajectories=4,
                         steps=40, train_seconds=40.0, rollout=20)
QUICK = ContinuumSettings(resolution=16, train_trajectories=3, validation_trajectories=1, test_trajectories=1,
                          steps=8, train_seconds=2.0, rollout=5, width=2, blocks=1, kernel_size=3, batch_size=8,
                          best_width=2, modes=3)

#: the most accurate equivariant model of benchmarks/continuum_accuracy.py (run name and `--model`, label)
BEST = ("gfno", "C(4) G-FNO")
# run name (also the `equiscale train fluid --model`), label
MODELS = [BEST, ("gcnn", "C(4) G-CNN"), ("cnn", "CNN"), ("cnn-aug", "CNN + rotation augmentation")]


def _simulate(ctx: DemoContext, settings: ContinuumSettings, folder: Path) -> tuple[Path, Path]:
    from equiscale.continuum.data import generate_fluid

    common = dict(steps=settings.steps, resolution=settings.resolution, viscosity=settings.viscosity, dt=settings.dt,
                  progress=ctx.progress)
    train, test = folder / "train.npz", folder / "test.npz"
    ctx.log(f"simulating {settings.train_trajectories} + {settings.test_trajectories} trajectories of decaying "
            f"turbulence, {settings.resolution}x{settings.resolution}, {settings.steps} steps")
    generate_fluid(train, trajectories=settings.train_trajectories, seed=ctx.seed, **common)
    generate_fluid(test, trajectories=settings.test_trajectories, seed=ctx.seed + 1000, **common)
    return train, test


def _train(ctx: DemoContext, settings: ContinuumSettings, data: Path, folder: Path) -> list[Path]:
    from equiscale.continuum.models import FluidGCNN, cnn_width_matching, count_parameters
    from equiscale.continuum.settings import TrainFluid
    from equiscale.continuum.training import train_fluid

    gcnn_parameters = count_parameters(FluidGCNN("C4", settings.width, settings.blocks, settings.kernel_size))
    widths = {"gcnn": settings.width}  # the CNNs: about as many parameters as the G-CNN
    widths["cnn"] = widths["cnn-aug"] = cnn_width_matching(gcnn_parameters, settings.blocks, settings.kernel_size)
    widths[BEST[0]] = settings.best_width
    runs = []
    shutil.rmtree(folder / "runs", ignore_errors=True)  # a demo run again into the same folder starts afresh
    for model, label in MODELS:
        run = folder / "runs" / model
        small = model in ("gcnn", "cnn", "cnn-aug")  # the best model keeps its own depth and kernel
        config = TrainFluid(model=model, group="C4", width=widths[model], modes=settings.modes,
                            blocks=settings.blocks if small else None, kernel_size=settings.kernel_size if small else None,
                            validation_trajectories=settings.validation_trajectories,
                            max_time=settings.train_seconds, batch_size=settings.batch_size, lr=settings.lr,
                            seed=ctx.seed, clock="process")
        with timed_bar(settings.train_seconds, f"training {label}", ctx.progress, clock=time.process_time):
            summary = train_fluid(data, run, config, progress=False)
        ctx.log(f"{label}: {summary['parameters']} parameters, {summary['steps']} steps in {summary['train_time']:.0f} CPU-s")
        runs.append(run)
    return runs


def _table(rows: list[dict], persistence: dict, rollout: int) -> str:
    marks = sorted({k for k in (10, rollout) if k <= rollout})
    header = ["model", "parameters", "train steps", "one-step error"] + [f"rollout error, step {k}" for k in marks]
    header += ["equivariance, 1 step", f"equivariance, {rollout} steps"]
    labels = dict(MODELS)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [labels.get(r["run"], r["run"]), str(r["parameters"]), str(r["steps"]), f"{r['one_step']:.4f}"]
        cells += [f"{r[f'rollout_{k}']:.3f}" for k in marks]
        cells += [f"{r['equivariance_1']:.1e}", f"{r[f'equivariance_{rollout}']:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["persistence (predict no change)", "0", "-", f"{persistence['one_step']:.4f}"]
    cells += [f"{persistence[f'rollout_{k}']:.3f}" for k in marks] + ["-", "-"]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section_continuum(ctx: DemoContext) -> SectionResult:
    """Simulate, train the three surrogates for the same time, evaluate and draw the rollouts."""
    from equiscale.check import checkpoint_checks
    from equiscale.continuum.evaluate import evaluate_runs

    settings = QUICK if ctx.quick else FULL
    folder = ctx.folder("continuum")
    train, test = _simulate(ctx, settings, folder)
    runs = _train(ctx, settings, train, folder)
    ctx.log("evaluating on the test trajectories")
    evaluate_runs(runs, test, out=folder, rollout=settings.rollout, figures=True, progress=ctx.progress)
    metrics = json.loads((folder / "metrics.json").read_text())
    rows, persistence = metrics["runs"], metrics["persistence"]
    for run, (model, label) in zip(runs, MODELS):
        ctx.add_checks(checkpoint_checks(run, label=f"fluid {label}", seed=ctx.seed)[1])

    figures = [folder / "rollout_error.png", folder / "spectra.png"] + [folder / f"rollout_{model}.png"
                                                                        for model, _ in MODELS]
    s = settings
    text = [
        f"Decaying 2D turbulence (pseudo-spectral Navier-Stokes, periodic {s.resolution}x{s.resolution} grid, viscosity "
        f"{s.viscosity:g}, frames {s.dt:g} apart): {s.train_trajectories} training trajectories (the last "
        f"{s.validation_trajectories} validate) and {s.test_trajectories} test trajectory(ies) of {s.steps} steps. Each "
        f"model maps the vorticity at t to t + {s.dt:g} and was trained for the same {s.train_seconds:.0f} s of CPU "
        f"time (of the demo's process, so that other jobs on the machine do not favour one model); the CNNs have "
        f"about the G-CNN's parameter count. Errors are relative L2 on the test trajectories; rollouts apply the "
        f"model {s.rollout} times from frames 0, {s.rollout}, ...; equivariance is max |f(Rw) - Rf(w)| / max|f(w)| "
        f"over the 90-degree rotations R, float32. The {BEST[1]} is the most accurate equivariant model of the "
        f"continuum benchmark (benchmarks/RESULTS.md).",
        _table(rows, persistence, s.rollout),
        ctx.image(figures[0], "rollout error against step"),
        "Energy spectra of predicted and true fields along the rollouts (a model that loses or piles up energy at "
        "small scales shows it here before its error grows):",
        ctx.image(figures[1], "energy spectra, predicted and true"),
        "Test trajectories: truth, prediction and error along the rollout (each error panel on its own scale):",
        *[ctx.image(path, f"rollout of the {label}") for path, (_, label) in zip(figures[2:], MODELS)],
        f"Data, runs and the full evaluation (`report.md`, `metrics.json`) are in `{ctx.relative(folder)}/`; "
        f"`equiscale check {ctx.relative(runs[0])}` measures a model's equivariance again.",
    ]
    summary = [SummaryRow("continuum", label,
                          f"one-step {r['one_step']:.3f}, rollout-{s.rollout} {r[f'rollout_{s.rollout}']:.3f}, "
                          f"equivariance {r['equivariance_1']:.1e}")
               for r, (_, label) in zip(rows, MODELS)]
    metrics = {f"{r['run']}_{key}": float(r[key]) for r in rows
               for key in ("one_step", f"rollout_{s.rollout}", "equivariance_1", f"equivariance_{s.rollout}", "steps")}
    metrics.update({f"persistence_{key}": float(value) for key, value in persistence.items()})
    return SectionResult("Continuum: 2D turbulence surrogates", "\n\n".join(text), figures=figures, summary=summary,
                         metrics=metrics)
