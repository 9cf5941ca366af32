"""Training a committee: ``equiscale train TASK ... --ensemble N`` for every application.

The command line (:func:`equiscale.cli.main`) hands a train command whose settings have
``ensemble > 1`` to :func:`train_committee` instead of the command's run function. It runs that
same function N times, member K with ``out=DIR/member-K``, ``seed=seed+K`` (so its own initial
weights, data split and data order) and ``ensemble=1``, and writes ``DIR/committee.json``
(:mod:`equiscale.uncertainty.files`) before the first member starts, so that an interrupted
committee resumes: ``--resume`` continues each member from its ``last.pt`` and starts the members
that never began.

Parallelism: members run in up to ``min(N, threads)`` spawned processes (``threads`` is
``--threads``, or the machine's CPU count when unset), the threads split evenly among them, each
process's output in ``DIR/member-K/train.log``; one process (or a GPU device) trains the members
one after another in this process, with their output on the terminal. Under ``torchrun``
(``WORLD_SIZE > 1``) ``--ensemble`` is refused: the train commands there already use every process
for one model (train the members as separate torchrun jobs with ``--seed`` to combine them by hand).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from equiscale.uncertainty.files import COMMITTEE_FILE, is_committee, member_name, write_committee

__all__ = ["train_committee", "committee_directory", "member_settings", "plan_processes"]


def committee_directory(settings: Any) -> Path:
    """The committee's run directory: ``settings.run_dir`` where a command defines one, else ``settings.out``."""
    folder = getattr(settings, "run_dir", None) or getattr(settings, "out", None)
    if not folder:
        raise ValueError("--ensemble needs the run directory: pass --out DIR")
    return Path(folder)


def member_settings(settings: Any, index: int, folder: str | os.PathLike, threads: int | None = None) -> Any:
    """The settings of member ``index``: ``out=folder/member-K``, ``seed+K``, ``ensemble=1``; resumed
    when the committee is resumed and the member has a checkpoint to continue from."""
    out = Path(folder) / member_name(index)
    resume = bool(settings.resume) and os.path.isfile(type(settings).resume_checkpoint(out))
    changes: dict[str, Any] = {"out": str(out), "seed": settings.seed + index, "ensemble": 1, "resume": resume}
    if threads is not None:
        changes["threads"] = threads
    return dataclasses.replace(settings, **changes)


def plan_processes(members: int, threads: int | None, cpus: int | None = None, device: str = "cpu") -> tuple[int, int]:
    """(processes, threads per process) for ``members`` members given ``threads`` in all (None: every CPU)."""
    total = threads or cpus or os.cpu_count() or 1
    if device not in ("cpu", None):
        return 1, total  # one accelerator: members one after another
    processes = max(1, min(members, total))
    return processes, max(1, total // processes)


def _device(settings: Any) -> str:
    device = getattr(settings, "device", "cpu") or "cpu"
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _run_member(run: str, settings: Any, context: Mapping[str, Any], log: str | None) -> int:
    """Train one member (in a worker process when ``log`` is given: its output goes to that file)."""
    from equiscale.applications import load_function

    function = load_function(run)
    if log is None:
        return int(function(settings, **context) or 0)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as file, contextlib.redirect_stdout(file), contextlib.redirect_stderr(file):
        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        return int(function(settings, **context) or 0)


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def train_committee(run: str, settings: Any, context: Mapping[str, Any] | None = None, processes: int | None = None) -> int:
    """Train ``settings.ensemble`` members with the train command's run function ``run`` (``"module:function"``).

    Args:
        run: the command's run function, called once per member with its :func:`member_settings`.
        settings: the command's settings (a :class:`equiscale.settings.TrainingSettings` with ``ensemble``).
        context: keyword arguments the run function takes (``applications``, ``debug``).
        processes: force this many worker processes (default :func:`plan_processes`; 1 trains in this process).

    Returns:
        The largest exit status of the members (0 when all succeeded).

    Raises:
        ValueError: under torchrun, without a run directory, or a directory that already holds a run
            (without ``--resume``).
    """
    context = dict(context or {})
    n = int(settings.ensemble)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--ensemble does not run under torchrun (every process already trains the one model): "
                         "train the committee without torchrun, or one torchrun job per --seed")
    folder = committee_directory(settings)
    if not settings.resume and (is_committee(folder) or (folder / "last.pt").exists() or (folder / member_name(0)).exists()):
        raise ValueError(f"{folder} already holds a training run: resume it (--resume) or choose another directory")
    device = _device(settings)
    planned, threads = plan_processes(n, settings.threads, device=device)
    processes = planned if processes is None else max(1, min(processes, n))
    if processes != planned:
        threads = max(1, (settings.threads or os.cpu_count() or 1) // processes)
    members = [member_settings(settings, k, folder, threads if processes > 1 else settings.threads) for k in range(n)]
    record = {"kind": getattr(type(settings), "checkpoint_kind", None), "ensemble": n,
              "members": [member_name(k) for k in range(n)], "seeds": [m.seed for m in members],
              "settings": {**settings.as_dict(), "resume": False}, "complete": False}
    write_committee(folder, record)
    started = time.perf_counter()
    print(f"committee of {n} models in {folder}: " + (f"{processes} processes of {threads} thread(s), logs in "
          f"{folder}/member-K/train.log" if processes > 1 else "one after another"), flush=True)
    statuses: list[int] = []
    if processes == 1:
        for k, member in enumerate(members):
            print(f"--- member {k} of {n} (seed {member.seed}{', resumed' if member.resume else ''}) ---", flush=True)
            statuses.append(_run_member(run, member, context, None))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        quiet = [dataclasses.replace(m, quiet=True) for m in members]
        logs = [str(folder / member_name(k) / "train.log") for k in range(n)]
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_member, run, m, context, log) for m, log in zip(quiet, logs)]
            for k, future in enumerate(futures):
                statuses.append(future.result())
                print(f"member {k}: {_last_line(Path(logs[k])) or f'status {statuses[-1]}'}", flush=True)
    write_committee(folder, {**record, "complete": all(s == 0 for s in statuses), "statuses": statuses})
    print(f"committee of {n} trained in {time.perf_counter() - started:.0f} s: {folder / COMMITTEE_FILE}", flush=True)
    sys.stdout.flush()
    return max(statuses)

