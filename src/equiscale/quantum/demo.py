"""The quantum section of ``equiscale demo``: water's Fock matrix learned equivariantly, and SCF from it.

Labels displaced, randomly rotated water frames live with PySCF (:func:`equiscale.quantum.labels.label_dataset`,
in this process), trains the equivariant :class:`~equiscale.quantum.model.HamiltonianModel` and the
augmented non-equivariant baseline of about the same size for the same CPU time
(:func:`equiscale.quantum.training.train_hamiltonian`), evaluates both on held-out frames
(:func:`equiscale.quantum.evaluate.evaluate_hamiltonian`: H MAE, orbital energies, and PySCF's SCF
iterations from the predicted H against its ``minao`` guess) and registers their equivariance checks.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from equiscale.demo.context import DemoContext, SectionResult, SummaryRow
from equiscale.demo.progress import timed_bar

__all__ = ["QuantumSettings", "FULL", "QUICK", "MODELS", "section_quantum"]


@dataclass(frozen=True)
class QuantumSettings:
    """Sizes and budgets of the quantum section."""

    train_frames: int  # including the validation ones
    test_frames: int
    train_seconds: float  # per model, CPU seconds of the demo's process
    scf_frames: int
    basis: str = "sto-3g"
    xc: str = "hf"
    amplitude: float = 0.05  # Angstrom, the displacement of every coordinate
    lmax: int = 2
    channels: int = 16
    pair_channels: int = 8
    radial_hidden: int = 32
    batch_size: int = 2
    lr: float = 1e-2


FULL = QuantumSettings(train_frames=60, test_frames=10, train_seconds=60.0, scf_frames=5, xc="b3lyp")
QUICK = QuantumSettings(train_frames=12, test_frames=3, train_seconds=6.0, scf_frames=2, channels=8, pair_channels=4,
                        radial_hidden=16)

MODELS = [("equivariant", "equivariant model"), ("baseline", "MLP + O(3) augmentation")]


def _label(ctx: DemoContext, settings: QuantumSettings, out: Path, frames: int, seed: int) -> Path:
    from equiscale.quantum.geometry import displaced_frames
    from equiscale.quantum.labels import label_dataset

    shutil.rmtree(out, ignore_errors=True)
    info = {"molecule": "water", "basis": settings.basis, "xc": settings.xc, "seed": seed,
            "displacements": f"every coordinate N(0, {settings.amplitude:g}^2) Angstrom, then a random rotation",
            "polarizability": False, "field": 1e-3, "settings": {"frames": frames, "seed": seed}}
    label_dataset(out, list(displaced_frames("water", frames, amplitude=settings.amplitude, seed=seed)), info,
                  basis=settings.basis, xc=settings.xc, shard_size=10, workers=1, polarizability=False,
                  progress=ctx.progress, say=ctx.log)
    return out


def _train(ctx: DemoContext, settings: QuantumSettings, data: Path, folder: Path) -> list[tuple[Path, dict]]:
    from equiscale.quantum.settings import TrainHamiltonian
    from equiscale.quantum.training import train_hamiltonian

    runs = []
    shutil.rmtree(folder / "runs", ignore_errors=True)
    for model, label in MODELS:
        run = folder / "runs" / model
        config = TrainHamiltonian(data=str(data), out=str(run), model=model, max_time=settings.train_seconds,
                                  clock="process", lmax=settings.lmax, channels=settings.channels,
                                  pair_channels=settings.pair_channels, radial_hidden=settings.radial_hidden,
                                  batch_size=settings.batch_size, lr=settings.lr, seed=ctx.seed, quiet=True,
                                  valid_fraction=0.125)
        with timed_bar(settings.train_seconds, f"training the {label}", ctx.progress, clock=time.process_time):
            summary = train_hamiltonian(config, progress=False)
        ctx.log(f"{label}: {summary['parameters']} parameters, {summary['steps']} steps in {summary['train_time']:.0f} CPU-s")
        runs.append((run, summary))
    return runs


def section_quantum(ctx: DemoContext) -> SectionResult:
    """Label water live, train both models for the same time, evaluate, compare SCF starts."""
    from equiscale.check import checkpoint_checks
    from equiscale.quantum.app import APPLICATION
    from equiscale.quantum.evaluate import evaluate_hamiltonian

    s = QUICK if ctx.quick else FULL
    folder = ctx.folder("quantum")
    ctx.log(f"labelling {s.train_frames} + {s.test_frames} water frames with PySCF ({s.xc}/{s.basis})")
    train = _label(ctx, s, folder / "train.dft", s.train_frames, ctx.seed)
    test = _label(ctx, s, folder / "test.dft", s.test_frames, ctx.seed + 1000)
    runs = _train(ctx, s, train, folder)
    results = []
    for (run, summary), (model, label) in zip(runs, MODELS):
        figures = folder / "figures" / model
        metrics = evaluate_hamiltonian(run, test, scf_frames=s.scf_frames, figures=figures)
        metrics["parameters"] = float(summary["parameters"])
        results.append(metrics)
        ctx.add_checks(checkpoint_checks(run, label=f"hamiltonian {label}", seed=ctx.seed,
                                         applications=[APPLICATION])[1])

    rows = ["| model | parameters | H MAE (uHa) | occupied orbital-energy MAE (uHa) | orbital cosine | "
            "gap error (uHa) | SCF iterations from predicted H | from minao |", "|" + "---|" * 8]
    for m, (_, label) in zip(results, MODELS):
        rows.append(f"| {label} | {m['parameters']:.0f} | {m['h_mae_uha']:.0f} | {m['orbital_energy_mae_uha']:.0f} | "
                    f"{m['orbital_cosine']:.4f} | {m['gap_mae_uha']:.0f} | {m['scf_iterations_predicted']:.1f} | "
                    f"{m['scf_iterations_minao']:.1f} |")
    best = results[0]
    figures = [folder / "figures" / "equivariant" / name for name in ("hamiltonian.png", "orbital_parity.png",
                                                                        "scf_convergence.png")]
    text = [
        f"Water, {s.xc.upper()}/{s.basis.upper()} with PySCF: {s.train_frames} training frames (1/8 validate) and "
        f"{s.test_frames} held-out frames, each coordinate displaced by N(0, {s.amplitude:g}^2) Angstrom and the "
        f"molecule rotated at random, labelled live. Both models were trained on the Fock matrix (MSE of its "
        f"entries, Hartree) for the same {s.train_seconds:.0f} s of CPU time; the baseline sees raw coordinates and "
        f"learns the rotations from randomly rotated and reflected copies. The SCF columns are PySCF's iterations "
        f"on {s.scf_frames} held-out frames started from the density of the predicted H and from its `minao` "
        f"guess (largest difference of the converged energies {best.get('scf_energy_difference', 0.0):.1e} Ha).",
        "\n".join(rows),
        ctx.image(figures[0], "true, predicted and error of H"),
        ctx.image(figures[1], "orbital energies, predicted against true"),
        ctx.image(figures[2], "SCF convergence from the predicted H and from minao"),
        f"Data and runs are in `{ctx.relative(folder)}/`; `equiscale evaluate hamiltonian "
        f"{ctx.relative(runs[0][0])} --data {ctx.relative(test)}` repeats the evaluation.",
    ]
    summary = [SummaryRow("quantum", f"water H, {label}",
                          f"H MAE {m['h_mae_uha']:.0f} uHa, SCF {m['scf_iterations_predicted']:.1f} vs minao "
                          f"{m['scf_iterations_minao']:.1f} iterations")
               for m, (_, label) in zip(results, MODELS)]
    numbers = {f"{model}_{k}": float(v) for m, (model, _) in zip(results, MODELS) for k, v in m.items()}
    return SectionResult("Quantum: the Hamiltonian of water", "\n\n".join(text), figures=figures, summary=summary,
                         metrics=numbers)
