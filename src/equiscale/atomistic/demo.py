"""The atomistic section of ``equiscale demo``: EMT copper, the equivariant potential, held-out
errors and NVE dynamics (declared in :mod:`equiscale.atomistic.app`).

Generates training and held-out frames with ASE's EMT calculator (:func:`equiscale.atomistic.emt_frames`),
trains an :class:`~equiscale.atomistic.EquivariantPotential` for a fixed time
(:func:`equiscale.atomistic.train_potential`), evaluates it on the held-out frames with a parity plot
(:mod:`equiscale.atomistic.evaluate`), then runs constant-energy molecular dynamics through the ASE
calculator (:class:`equiscale.atomistic.Calculator`) and plots the energies
(:mod:`equiscale.atomistic.dynamics`).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from equiscale.demo.context import DemoContext, SectionResult, SummaryRow
from equiscale.demo.progress import timed_bar

__all__ = ["AtomisticSettings", "FULL", "QUICK", "section_atomistic"]


@dataclass(frozen=True)
class AtomisticSettings:
    """Sizes and budgets of the atomistic section."""

    size: int  # conventional fcc cells per side: 4 size^3 atoms
    train_frames: int
    test_frames: int
    interval: int  # Langevin steps of 2 fs between frames
    train_seconds: float
    md_fs: float
    md_timestep_fs: float = 2.0  # the time step of the EMT reference dynamics
    element: str = "Cu"
    temperature: float = 800.0
    md_temperature: float = 600.0
    lmax: int = 2
    channels: int = 16
    layers: int = 2
    cutoff: float = 4.5
    num_radial_basis: int = 8
    radial_hidden: int = 32
    readout_hidden: int = 16
    batch_size: int = 4
    lr: float = 1e-2


FULL = AtomisticSettings(size=2, train_frames=60, test_frames=10, interval=10, train_seconds=60.0, md_fs=1000.0)
QUICK = AtomisticSettings(size=2, train_frames=8, test_frames=3, interval=3, train_seconds=3.0, md_fs=40.0,
                          lmax=1, channels=4, layers=1, cutoff=3.0, num_radial_basis=4,
                          radial_hidden=8, readout_hidden=4, batch_size=2)


def _frames(ctx: DemoContext, settings: AtomisticSettings, count: int, seed: int, what: str) -> list:
    from equiscale.atomistic import emt_frames
    from equiscale.train.progress import progress_bar

    bar = progress_bar(total=count, enabled=ctx.progress, desc=f"EMT {what} frames", unit="frame", leave=False)
    done = [0]

    def advance(frames: int) -> None:
        bar.update(frames - done[0])
        done[0] = frames

    try:
        return emt_frames(settings.element, settings.size, count, settings.temperature, settings.interval, seed=seed,
                          progress=advance)
    finally:
        bar.close()


def _data(ctx: DemoContext, settings: AtomisticSettings, folder: Path) -> tuple[Path, Path, list]:
    from equiscale.atomistic import write_structures

    atoms = 4 * settings.size**3
    ctx.log(f"EMT {settings.element}: {settings.train_frames} + {settings.test_frames} frames of {atoms} atoms, "
            f"Langevin MD at {settings.temperature:g} K")
    train, test = folder / "train.xyz", folder / "test.xyz"
    write_structures(train, _frames(ctx, settings, settings.train_frames, ctx.seed, "training"))
    held_out = _frames(ctx, settings, settings.test_frames, ctx.seed + 1000, "held-out")
    write_structures(test, held_out)
    return train, test, held_out


def _train(ctx: DemoContext, settings: AtomisticSettings, data: Path, folder: Path) -> Path:
    from equiscale.atomistic.settings import TrainSettings
    from equiscale.atomistic.training import train_potential

    run = folder / "run"
    shutil.rmtree(run, ignore_errors=True)  # a demo run again into the same folder starts afresh
    options = TrainSettings(
        data=str(data), out=str(run), max_time=settings.train_seconds, patience=None,
        batch_size=settings.batch_size, lr=settings.lr, lr_patience=3, seed=ctx.seed, progress=False, device="cpu",
        lmax=settings.lmax, channels=settings.channels, layers=settings.layers, cutoff=settings.cutoff,
        num_radial_basis=settings.num_radial_basis, radial_hidden=settings.radial_hidden,
        readout_hidden=settings.readout_hidden)
    with timed_bar(settings.train_seconds, "training the potential", ctx.progress):
        summary = train_potential(options)
    ctx.log(f"potential: {summary['epochs']} epochs, {summary['steps']} steps in {summary['train_time']:.0f} s")
    return run / "best.pt"


def section_atomistic(ctx: DemoContext) -> SectionResult:
    """EMT data, training, held-out errors with a parity plot, NVE dynamics with an energy plot."""
    from equiscale.atomistic import Calculator
    from equiscale.atomistic.dynamics import energy_drift, plot_energy, run_nve
    from equiscale.atomistic.evaluate import evaluate_potential
    from equiscale.check import checkpoint_checks

    settings = QUICK if ctx.quick else FULL
    folder = ctx.folder("atomistic")
    train, test, held_out = _data(ctx, settings, folder)
    checkpoint = _train(ctx, settings, train, folder)
    parity = folder / "parity.png"
    metrics = evaluate_potential(checkpoint, test, plot=parity)
    ctx.add_checks(checkpoint_checks(checkpoint, label=f"{settings.element} potential", seed=ctx.seed)[1])

    steps = round(settings.md_fs / settings.md_timestep_fs)
    ctx.log(f"NVE molecular dynamics: {steps} steps of {settings.md_timestep_fs:g} fs through the ASE calculator")
    record = run_nve(held_out[-1].to_atoms(), Calculator(checkpoint, dtype="float64"), duration_fs=settings.md_fs,
                     timestep_fs=settings.md_timestep_fs, temperature=settings.md_temperature, seed=ctx.seed,
                     progress=ctx.progress)
    drift = energy_drift(record)
    energy_plot = folder / "md_energy.png"
    plot_energy(record, energy_plot, title=f"NVE, {record.atoms} {settings.element} atoms, "
                f"{settings.md_timestep_fs:g} fs steps, equiscale potential through ASE")
    (folder / "md_energy.csv").write_text("time_fs,potential_eV,kinetic_eV,total_eV\n" + "".join(
        f"{t:g},{p:.10f},{k:.10f},{p + k:.10f}\n" for t, p, k in zip(record.time_fs, record.potential, record.kinetic)))

    s = settings
    text = [
        f"Reference data: Langevin MD of fcc {s.element} ({4 * s.size**3} atoms, periodic) at {s.temperature:g} K "
        f"with ASE's EMT calculator, {s.train_frames} training frames (10% of them validate) and {s.test_frames} "
        f"held-out frames from another seed. The potential (lmax {s.lmax}, {s.channels} channels, {s.layers} "
        f"interaction layer(s), cutoff {s.cutoff:g} A) was trained on energies, forces and stresses for {s.train_seconds:.0f} s.",
        "\n".join([
            "| held-out frames | energy MAE (meV/atom) | force MAE (meV/A) | force RMSE (meV/A) | stress MAE (meV/A^3) |",
            "|---|---|---|---|---|",
            f"| {metrics['structures']:.0f} | {metrics['energy_mae_per_atom']:.2f} | {metrics['force_mae']:.1f} | "
            f"{metrics['force_rmse']:.1f} | {metrics.get('stress_mae', float('nan')):.2f} |"]),
        ctx.image(parity, "parity plot of energies and forces"),
        f"Molecular dynamics: {record.time_fs[-1] / 1000:g} ps of velocity-Verlet NVE ({steps} steps of "
        f"{s.md_timestep_fs:g} fs) from a held-out frame with velocities drawn at {s.md_temperature:g} K, forces "
        f"from `equiscale.atomistic.Calculator` (float64). Total-energy drift {drift['drift']:+.1e} meV/atom/ps, "
        f"fluctuation {drift['fluctuation']:.1e} meV/atom about the fit, against {drift['kinetic_fluctuation']:.1f} "
        f"meV/atom for the kinetic energy; mean temperature {drift['temperature']:.0f} K.",
        ctx.image(energy_plot, "energy conservation in NVE dynamics"),
        f"Data, the run (`run/best.pt`) and the energies (`md_energy.csv`) are in `{ctx.relative(folder)}/`.",
    ]
    summary = [
        SummaryRow("atomistic", f"{s.element} potential, held-out frames",
                   f"energy MAE {metrics['energy_mae_per_atom']:.2f} meV/atom, force MAE {metrics['force_mae']:.1f} meV/A"),
        SummaryRow("atomistic", f"NVE MD, {record.time_fs[-1] / 1000:g} ps",
                   f"drift {drift['drift']:+.1e} meV/atom/ps, fluctuation {drift['fluctuation']:.1e} meV/atom"),
    ]
    numbers = {**{k: float(v) for k, v in metrics.items()}, **{f"md_{k}": v for k, v in drift.items()}}
    return SectionResult("Atomistic: an equivariant potential for copper", "\n\n".join(text),
                         figures=[parity, energy_plot], summary=summary, metrics=numbers)
