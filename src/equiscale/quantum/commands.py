"""The run functions of the quantum commands (declared in :mod:`equiscale.quantum.app`)::

    equiscale data dft --molecule water --frames 500 --basis def2-svp --xc b3lyp --out water.dft
    equiscale train hamiltonian --data water.dft --out runs/h [--model baseline] [--max-time 600] [--resume]
    equiscale evaluate hamiltonian runs/h --data test.dft [--scf-frames 5] [--no-figures] [--json m.json]
    equiscale train hamiltonian --data water.dft --out runs/hc --ensemble 3   # a committee; evaluate it the same way

Each takes its settings (:mod:`equiscale.quantum.settings`) and returns the exit status; the heavy
imports (numpy, PySCF, Dask, torch) happen inside.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

from equiscale.quantum.settings import RESUME_KEYS, DataDFT, EvaluateHamiltonian, TrainHamiltonian

if TYPE_CHECKING:
    from equiscale.applications import Application

__all__ = ["data_dft", "train_hamiltonian", "evaluate_hamiltonian"]


def _file_digest(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def data_dft(settings: DataDFT) -> int:
    """``equiscale data dft``: label frames with PySCF into ``settings.out`` (resuming a partial run)."""
    from equiscale.quantum.geometry import describe_displacements, displaced_frames, read_frames
    from equiscale.quantum.labels import label_dataset

    s = settings
    identity: dict[str, Any] = {k: getattr(s, k) for k in RESUME_KEYS}
    identity["frames"] = s.frame_count
    if s.structures:
        if not os.path.isfile(s.structures):
            raise ValueError(f"structure file {s.structures} does not exist")
        frames = read_frames(s.structures, s.frame_count)
        identity.update(molecule=None, temperature=None, amplitude=None, seed=None,
                        structures=os.path.abspath(s.structures), structures_sha256=_file_digest(s.structures))
        molecule, displacements = os.path.basename(s.structures), "none: structures as given in the file"
    else:
        frames = list(displaced_frames(s.molecule, s.frame_count, s.temperature, s.amplitude, s.seed))
        molecule, displacements = s.molecule, describe_displacements(s.temperature, s.amplitude)
    info = {"molecule": molecule, "basis": s.basis, "xc": s.xc, "seed": s.seed if not s.structures else None,
            "displacements": displacements, "polarizability": s.polarizability, "field": s.field,
            "settings": identity}
    workers = s.workers if s.workers is not None else _cores()
    try:
        summary = label_dataset(s.out, frames, info, basis=s.basis, xc=s.xc, shard_size=s.shard_size,
                                workers=workers, scheduler=s.dask_scheduler, conv_tol=s.conv_tol,
                                conv_tol_grad=s.conv_tol_grad, max_cycle=s.max_cycle, field=s.field,
                                polarizability=s.polarizability, progress=not s.quiet)
    except KeyboardInterrupt:
        print(f"interrupted: the finished shards are kept in {s.out}; run the same command again to finish")
        return 130
    rate = summary["computed"] / summary["seconds"] if summary["seconds"] > 0 else 0.0
    failed = (f"; {summary['failed']} frames skipped (SCF did not converge, listed in {s.out}/manifest.json)"
              if summary["failed"] else "")
    print(f"{summary['frames']} frames of {molecule} ({s.xc}/{s.basis}) in {s.out}: {summary['computed']} labelled "
          f"now in {summary['seconds']:.1f} s ({rate:.2f} frames/s){failed}")
    return 0


def train_hamiltonian(settings: TrainHamiltonian) -> int:
    """``equiscale train hamiltonian``: train (or, with ``resume``, continue) a Hamiltonian model."""
    from equiscale.quantum.training import train_hamiltonian as train

    summary = train(settings)
    if summary.get("is_main", True):
        print(f"stopped after {summary['epochs']} epochs ({summary['stop_reason']}); best monitored loss "
              f"{summary['best']:.4g}; checkpoints in {settings.out}")
    return 0


def _hamiltonian_file(path: str, applications: Sequence[Application] | None = None) -> str:
    """The hamiltonian checkpoint of ``path`` (:func:`equiscale.check.expect_kind`); a committee run
    directory (``--ensemble N``) as it is, once its ``committee.json`` names hamiltonian models."""
    from equiscale.check import expect_kind
    from equiscale.uncertainty.files import committee_settings, is_committee

    if is_committee(path):
        committee_settings(path, "hamiltonian")  # ValueError for a committee of another kind
        return str(path)
    return str(expect_kind(path, "hamiltonian", applications))


def evaluate_hamiltonian(settings: EvaluateHamiltonian, applications: Sequence[Application] | None = None) -> int:
    """``equiscale evaluate hamiltonian``: print the metrics, write the figures (and the JSON)."""
    import json

    from equiscale.quantum.evaluate import UNITS
    from equiscale.quantum.evaluate import evaluate_hamiltonian as evaluate
    from equiscale.uncertainty.files import is_committee

    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)
    checkpoint = _hamiltonian_file(settings.checkpoint, applications)
    committee = is_committee(checkpoint)
    figures = None
    if settings.figures:
        figures = settings.out or (checkpoint if committee else os.path.dirname(os.path.abspath(checkpoint)))
    metrics = evaluate(checkpoint, settings.data, frames=settings.frames, scf_frames=settings.scf_frames,
                       conv_tol=settings.conv_tol, batch_size=settings.batch_size, dtype=settings.dtype, figures=figures)
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f"{key:26s} {value:14.6g} {UNITS.get(key, '')}".rstrip())
    if "uncertainty" in metrics:
        from equiscale.quantum.uncertainty import committee_text

        print(committee_text(metrics["uncertainty"], metrics["uncertainty"]["members"]))
    if settings.json:
        with open(settings.json, "w") as file:
            json.dump(metrics, file, indent=1)
    if figures is not None:
        names = ["hamiltonian.png", "orbital_parity.png"] + (["scf_convergence.png"] if settings.scf_frames else [])
        print(f"figures: {figures}/" + ", ".join(names + (["calibration.png"] if committee else [])))
    return 0
