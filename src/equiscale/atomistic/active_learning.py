"""Active learning of a potential: a committee proposes, the reference labels where it disagrees.

    equiscale learn potential --calculator emt --element Cu --rounds 4 --out runs/al

Round ``r`` (``DIR/round-r/``, a committee run directory loadable by
:class:`~equiscale.atomistic.Calculator` and ``equiscale evaluate potential``):

1. train the committee (``ensemble`` members, seeds ``seed+K``) on every frame labelled so far
   (``train.xyz``); from round 2 on each member starts from its weights of the previous round and
   keeps the data statistics of round 1 (a warm start);
2. run Langevin MD at ``temperature`` with the committee's mean forces from the ideal crystal, and
   watch the largest per-atom force spread ``max_i forces_std_i`` (eV/A) at every step: of the
   frames whose spread passes the threshold, the ``max_new`` most uncertain ones at least
   ``min_gap`` steps apart are collected; the MD stops when the spread passes ``explode_factor`` x the threshold (the committee no
   longer knows where it is: continuing would sample nonsense) or after ``md_steps``;
3. label the collected frames with the reference calculator (``selected.xyz``) and add them.

The threshold is ``threshold`` (eV/A) when given, else ``threshold_factor`` x the committee's mean
largest spread on its own training frames. The test error is the committee's mean prediction on
``test_frames`` frames of reference Langevin MD at ``temperature`` (``DIR/test.xyz``). Each
finished round is appended to ``DIR/rounds.json``; ``--resume`` continues after the last finished
round (an unfinished round is redone).
"""
from __future__ import annotations

import importlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from equiscale.atomistic.settings import LearnPotential
from equiscale.atomistic.structures import AtomicStructure, read_structures, write_structures

__all__ = ["reference_calculator", "initial_frames", "committee_md", "active_learning", "learn_potential"]


def reference_calculator(name: str) -> Any:
    """The ASE calculator called ``name``: ``"emt"`` (ASE's EMT), or ``"module:Class"`` built without arguments.

    Raises:
        ValueError: the module or class cannot be imported.
    """
    if name == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    module, _, attribute = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"reference calculator {name!r} cannot be imported: {error}") from error
    return cls()


def _crystal(settings: LearnPotential) -> Any:
    from ase.build import bulk

    return bulk(settings.element, "fcc", cubic=True).repeat((settings.size,) * 3)


def initial_frames(settings: LearnPotential, calculator: Any) -> list[AtomicStructure]:
    """``initial_frames`` copies of the ideal crystal with Gaussian displacements of ``rattle`` A, labelled."""
    from equiscale.atomistic.emt import label_structures

    rng = np.random.default_rng(settings.seed)
    frames = []
    for _ in range(settings.initial_frames):
        atoms = _crystal(settings)
        atoms.positions += rng.normal(scale=settings.rattle, size=atoms.positions.shape)
        frames.append(atoms)
    return label_structures(frames, calculator)


def committee_md(calculator: Any, settings: LearnPotential, threshold: float, seed: int) -> dict[str, Any]:
    """Langevin MD with the committee ``calculator``; collect the most uncertain frames above ``threshold``.

    Returns:
        ``frames`` (``ase.Atoms`` to label), ``steps`` (stable steps run), ``exploded`` (the spread
        passed ``explode_factor`` x ``threshold``), ``max_spread`` (eV/A) and ``spread`` (per step).
    """
    from ase import units
    from ase.md import velocitydistribution
    from ase.md.langevin import Langevin

    atoms = _crystal(settings)
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    thermalize = getattr(velocitydistribution, "thermalize_momenta", None) or velocitydistribution.MaxwellBoltzmannDistribution
    thermalize(atoms, temperature_K=settings.temperature, rng=rng)
    dynamics = Langevin(atoms, 2.0 * units.fs, temperature_K=settings.temperature, friction=0.02, fixcm=False, rng=rng)
    candidates: list[tuple[float, int, Any]] = []
    spreads: list[float] = []
    exploded = False
    for step in range(settings.md_steps):
        dynamics.run(1)
        atoms.get_forces()
        spread = float(np.max(calculator.results["forces_std"]))
        spreads.append(spread)
        if not np.isfinite(spread) or spread > settings.explode_factor * threshold:
            exploded = True
            break
        if spread > threshold:
            candidates.append((spread, step, atoms.copy()))
    chosen: list[tuple[float, int, Any]] = []  # the most uncertain frames, at least min_gap steps apart
    for candidate in sorted(candidates, key=lambda c: -c[0]):
        if len(chosen) < settings.max_new and all(abs(candidate[1] - c[1]) >= settings.min_gap for c in chosen):
            chosen.append(candidate)
    steps = len(spreads) - (1 if exploded else 0)
    return {"frames": [c[2] for c in sorted(chosen, key=lambda c: c[1])], "steps": steps, "exploded": exploded,
            "max_spread": max(spreads), "spread": spreads}


def _train_round(settings: LearnPotential, folder: Path, data: Path, previous: Path | None,
                 statistics: dict[str, Any] | None) -> dict[str, Any] | None:
    """Train the round's committee into ``folder/member-K``; return the data statistics it used."""
    from equiscale.atomistic.training import train_potential
    from equiscale.train import load_checkpoint
    from equiscale.uncertainty.files import member_name, write_committee

    epochs = settings.retrain_epochs if previous is not None else settings.epochs
    members = [settings.train_settings(str(data), str(folder / member_name(k)), settings.seed + k, epochs)
               for k in range(settings.ensemble)]
    write_committee(folder, {"kind": "potential", "ensemble": settings.ensemble,
                             "members": [member_name(k) for k in range(settings.ensemble)],
                             "seeds": [m.seed for m in members], "settings": members[0].as_dict(), "complete": False})
    for k, member in enumerate(members):
        initial = None
        if previous is not None:
            state = load_checkpoint(previous / member_name(k) / "best.pt", kind="potential")
            initial = state.get("ema") or state["model"]
            statistics = state["header"]["statistics"]
        train_potential(member, resume=False, initial_weights=initial, statistics=statistics)
    write_committee(folder, {"kind": "potential", "ensemble": settings.ensemble,
                             "members": [member_name(k) for k in range(settings.ensemble)],
                             "seeds": [m.seed for m in members], "settings": members[0].as_dict(), "complete": True})
    return statistics


def _spread_on(calculator: Any, structures: list[AtomicStructure]) -> float:
    """The committee's mean largest per-atom force spread over ``structures``."""
    values = []
    for structure in structures:
        atoms = structure.to_atoms()
        atoms.calc = calculator
        atoms.get_forces()
        values.append(float(np.max(calculator.results["forces_std"])))
    return float(np.mean(values))


def _test_error(folder: Path, test: list[AtomicStructure]) -> dict[str, float]:
    from equiscale.atomistic.evaluate import load_potential_committee, predict_committee, error_metrics

    if not test:
        return {}
    metrics = error_metrics(predict_committee(load_potential_committee(folder), test))
    return {k: metrics[k] for k in ("energy_mae_per_atom", "force_mae", "force_rmse") if k in metrics}


def active_learning(settings: LearnPotential, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run (or, with ``settings.resume``, continue) active learning; return one record per round.

    Each record: ``round``, ``labelled`` (frames trained on), ``new`` (frames labelled this round),
    ``threshold`` and ``max_spread`` (eV/A), ``stable_fs`` (MD time before the spread exploded, or
    the whole run), ``exploded``, the test errors (``force_mae``, ``force_rmse`` meV/A,
    ``energy_mae_per_atom`` meV/atom) and ``cpu_seconds`` of the round.

    Raises:
        ValueError: ``out`` holds a run and ``resume`` is not set, or a bad reference calculator.
    """
    from equiscale.atomistic.calculator import Calculator
    from equiscale.atomistic.emt import label_structures, langevin_frames

    out = Path(settings.out)
    record_file = out / "rounds.json"
    if record_file.exists() and not settings.resume:
        raise ValueError(f"{out} already holds an active-learning run: resume it (--resume) or choose another directory")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    reference = reference_calculator(settings.calculator)
    out.mkdir(parents=True, exist_ok=True)
    rounds: list[dict[str, Any]] = json.loads(record_file.read_text())["rounds"] if record_file.exists() else []
    if not (out / "test.xyz").exists():
        test = langevin_frames(_crystal(settings), reference, settings.test_frames, settings.temperature,
                               seed=settings.seed + 999, warmup=10) if settings.test_frames else []
        write_structures(out / "test.xyz", test) if test else None
        log(f"test set: {len(test)} frames of reference Langevin MD at {settings.temperature:g} K")
    test = read_structures(out / "test.xyz") if (out / "test.xyz").exists() else []
    if rounds:
        last = out / f"round-{rounds[-1]['round']}"
        labelled = read_structures(last / "train.xyz") + (read_structures(last / "selected.xyz")
                                                          if (last / "selected.xyz").exists() else [])
        log(f"resuming after round {rounds[-1]['round']} with {len(labelled)} labelled frames")
    else:
        labelled = initial_frames(settings, reference)
        log(f"round 1 starts from {len(labelled)} labelled frames (ideal crystal, {settings.rattle:g} A displacements)")
    statistics = None
    for index in range(len(rounds) + 1, settings.rounds + 1):
        started = time.process_time()
        folder = out / f"round-{index}"
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished round is redone
        folder.mkdir(parents=True)
        write_structures(folder / "train.xyz", labelled)
        previous = out / f"round-{index - 1}" if index > 1 else None
        statistics = _train_round(settings, folder, folder / "train.xyz", previous, statistics)
        calculator = Calculator(folder, dtype="float32")
        threshold = settings.threshold or settings.threshold_factor * _spread_on(calculator, labelled)
        md = committee_md(calculator, settings, threshold, seed=settings.seed + 100 * index)
        new = label_structures(md["frames"], reference)
        if new:
            write_structures(folder / "selected.xyz", new)
        record = {"round": index, "labelled": len(labelled), "new": len(new), "threshold": threshold,
                  "max_spread": md["max_spread"], "stable_fs": 2.0 * md["steps"], "exploded": md["exploded"],
                  **_test_error(folder, test), "cpu_seconds": time.process_time() - started}
        rounds.append(record)
        record_file.write_text(json.dumps({"settings": settings.as_dict(), "rounds": rounds}, indent=1))
        log(format_round(record))
        labelled = labelled + new
        if not new and not md["exploded"]:
            log(f"round {index}: no frame passed the threshold in {2 * md['steps']:g} fs of MD; stopping")
            break
    return rounds


def format_round(record: dict[str, Any]) -> str:
    """One line per round: frames, test error, the longest stable MD."""
    stop = "spread exploded" if record["exploded"] else "ran to the end"
    error = (f"; test force MAE {record['force_mae']:.1f} meV/A, energy MAE {record['energy_mae_per_atom']:.2f} meV/atom"
             if "force_mae" in record else "")
    return (f"round {record['round']}: trained on {record['labelled']} frames{error}; MD stable for "
            f"{record['stable_fs']:g} fs ({stop}, largest spread {record['max_spread']:.3f} eV/A, threshold "
            f"{record['threshold']:.3f}); labelled {record['new']} new frames ({record['cpu_seconds']:.0f} CPU-s)")


def learn_potential(settings: LearnPotential) -> int:
    """``equiscale learn potential``: run the rounds and print one line per round."""
    rounds = active_learning(settings)
    if rounds:
        print(f"{sum(r['new'] for r in rounds) + rounds[0]['labelled']} frames labelled in {len(rounds)} rounds; the "
              f"committee of the last round is {Path(settings.out) / ('round-' + str(rounds[-1]['round']))}")
    return 0

