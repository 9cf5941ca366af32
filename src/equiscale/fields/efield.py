"""The 3D electrostatics demonstration: charge density -> electric field, SO(3)-steerable CNN vs plain 3D CNNs.

:func:`run_efield_demo` trains an ``SO(3)``-steerable CNN and plain 3D CNNs to map a periodic charge
density to its electric field (:mod:`.electrostatics`), then measures the held-out error and the
equivariance under the 24 rotations of the cube and under random rotations
(:func:`~.rotation_error.rotation_error_3d`). Figures: :mod:`.plots`.

Every model starts from the same data-dependent initialisation (:func:`~.models.calibrate`: each
convolution scaled to unit output RMS on 8 training inputs) and is trained by :func:`.runs.fit`
(budgets are CPU seconds of this process by default, ``clock="process"``). Writes ``report.md``,
``metrics.json`` and PNG figures (matplotlib) to its folder.

Random rotations do not map the grid onto itself, so they are measured on an analytic input (a
few charge blobs near the centre) that is rotated exactly, and the rotated output of the unrotated
input is read off between grid points by Fourier interpolation, at interior points only. The same
measurement on the spectral gradient of the density (exactly equivariant in the continuum) gives
the floor of the method; on the exact periodic field it shows how symmetric the problem is on
this grid.
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
from equiscale.fields.plots import plot_angles, plot_efield_slice
from equiscale.fields.rotation_error import rotation_about, spectral_gradient, cube_rotations, rotation_error_3d
from equiscale.fields.runs import check_runs, fit, is_main, markdown_table, seeded, write_json
from equiscale.train import CheckpointHeader

__all__ = ["EfieldSettings", "EFIELD_QUICK", "EFIELD_DEMO", "EFIELD_FULL", "EFIELD_MODELS", "run_efield_demo"]


@dataclass(frozen=True)
class EfieldSettings:
    """Sizes and budgets of the electrostatics demo."""

    samples: int = 512
    resolution: int = 16
    box_size: float = 1.0
    max_time: float = 60.0
    epochs: int | None = 1_000_000  # None: until max_time
    multiplicities: tuple[int, int, int] = (4, 4, 2)  # SO(3) scalars, vectors, l=2 fields
    blocks: int = 1
    kernel_size: int = 5
    batch_size: int = 4
    lr: float = 3e-3
    random_rotations: int = 8
    clock: str = "process"
    ema_decay: float | None = None  # a moving average of the weights (None: none)
    seed: int = 0
    quick: bool = False



EFIELD_FULL = EfieldSettings()
EFIELD_DEMO = EfieldSettings(samples=256, max_time=25.0)  # `equiscale demo`: under 90 s of training
EFIELD_QUICK = EfieldSettings(samples=12, resolution=8, max_time=2.0, epochs=2, multiplicities=(2, 2, 1),
                              kernel_size=5, random_rotations=2, quick=True)


EFIELD_MODELS = {"steerable": "SO(3)-steerable CNN", "cnn": "CNN, same parameters", "cnn-wide": "CNN, same width"}


def _efield_models(settings: EfieldSettings, scales: dict[str, float]) -> dict[str, tuple[dict[str, Any], Callable]]:
    from equiscale.fields.models import EfieldCNN, SteerableEfieldNet, match_width

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
                    resume: bool = False, settings: EfieldSettings | None = None,
                    header_settings: dict[str, Any] | None = None, epoch_lines: bool | None = None,
                    figures: bool = True) -> dict[str, Any] | None:
    """Train and compare the SO(3)-steerable CNN and plain CNNs on ``rho -> E`` (periodic 3D electrostatics).

    Quick: tiny sizes (< 30 s in all); otherwise :data:`EFIELD_DEMO` (under 90 s of training) unless
    ``settings``/``samples``/``resolution``/``max_time`` say otherwise. Writes ``report.md``,
    ``metrics.json``, ``efield_slice.png`` and ``efield_equivariance_angles.png`` to ``out_dir``;
    returns ``{"markdown", "figures", "rows", "models", "resolution", "box_size"}`` with ``rows`` =
    ``dict(model, error, equivariance (cube rotations), equivariance_random, ...)`` and ``models`` the
    trained modules by name. ``figures=False`` skips the PNGs (and their links in the report).

    Each checkpoint's header (kind ``"efield"``) holds ``header_settings`` (the command's settings;
    default: the demo settings used) and, as statistics, the data scales, the resolution and the
    box size. ``progress`` shows progress bars, ``epoch_lines`` (default: as ``progress``) one line
    per epoch.

    Under torchrun every process generates the same data and trains the models together
    (:func:`.runs.fit`); rank 0 alone evaluates, writes the report and returns the result, the
    others return None.
    """
    from equiscale.fields.electrostatics import electric_field, random_charge_density
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
    check_runs(out, list(models), record, resume)

    statistics = {**scales, "resolution": settings.resolution, "box_size": settings.box_size}
    checkpoint_header = CheckpointHeader("efield", header_settings or asdict(settings), statistics, "float32")
    trained, summaries = {}, {}
    for name, (model_settings, cls) in models.items():
        model = seeded(seed, cls, model_settings)
        calibrate(model, rho[train][:8])
        summaries[name] = fit(EFIELD_MODELS[name], model, (rho[train], field[train]), (rho[val], field[val]),
                              scales["field_scale"], out / name, settings,
                              {"kind": "efield", "model": name, "settings": model_settings}, resume, progress,
                              checkpoint_header, epoch_lines)
        summaries[name]["parameters"] = count_parameters(model)
        trained[name] = model
    if not is_main():
        return None

    amplitude = float(rho[test].flatten(1).abs().max(1).values.median())
    sample = torch.Generator().manual_seed(seed + 1)
    random_rotations = list(SO3().sample(settings.random_rotations, generator=sample))
    angles = [0.0, 45.0, 90.0] if settings.quick else [7.5 * i for i in range(13)]
    about_z = [rotation_about(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), math.radians(a)) for a in angles]
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
    for label, reference in ((floor_label, spectral_gradient), (exact_label, exact)):
        floors[label] = rotation_error_3d(reference, settings.resolution, settings.box_size, random_rotations,
                                          amplitude)
        angle_curves[label] = rotation_error_3d(reference, settings.resolution, settings.box_size, about_z, amplitude)

    paths = [out / "efield_slice.png", out / "efield_equivariance_angles.png"]
    if figures:
        plot_efield_slice(rho[test][0].numpy(), field[test][0].numpy(), predictions, paths[0])
        plot_angles(angles, angle_curves, paths[1], "electric field: equivariance error vs angle about z (analytic "
                    "blobs)", references=(floor_label, exact_label))
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
        f"{markdown_table(header, table)}\n\n"
        f"Equivariance errors are max|f(g.rho) - g.f(rho)| / max|f(rho)| in float32. The 24 rotations of the cube map "
        f"the grid onto itself and are measured exactly on two test samples. Random rotations do not, so they are "
        f"measured on an analytic input: three Gaussian charge blobs near the centre, rotated exactly (their centres "
        f"move), scaled to the test densities; the rotated output R f(rho)(R^-1 p) is read between grid points by "
        f"Fourier interpolation and compared at points within 0.3 of the box of the centre. The same measurement of "
        f"the spectral gradient of the density, a local map that is exactly equivariant in the continuum, gives the "
        f"floor of the method; that of the exact solution shows how far the periodic problem itself is from SO(3) "
        f"symmetry (the periodic images of the charges are only cube-symmetric).\n")
    if figures:
        markdown += "\n![slice](efield_slice.png)\n\n![equivariance against angle](efield_equivariance_angles.png)\n"
    (out / "report.md").write_text("# Steerable demo: 3D electrostatics\n\n" + markdown)
    write_json(out / "metrics.json", {"rows": rows, "references_random": floors, "angles": angles,
                                       "angle_curves": angle_curves, "record": record})
    summary_rows = [{"model": r["label"], "error": r["error"], "equivariance": r["equivariance_cube"],
                     "equivariance_random": r["equivariance_random_max"], "parameters": r["parameters"]} for r in rows]
    return {"markdown": markdown, "figures": paths if figures else [], "rows": summary_rows, "models": trained,
            "resolution": settings.resolution, "box_size": settings.box_size}


def _relative_3d(prediction: Tensor, truth: Tensor) -> Tensor:
    return (prediction - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1).clamp_min(1e-30)

