"""``equiscale check``: measure how equivariant a trained model is, in float64 and float32.

A *check* is a named function ``measure(dtype, generator) -> error`` that returns the relative
equivariance error ``max |f(g.x) - g.f(x)| / max |f(x)|`` of :func:`equiscale.testing.equivariance_error`
at random group elements drawn from ``generator``, with the model and inputs in ``dtype``.

:func:`checkpoint_checks` builds the checks of a checkpoint: it reads the ``kind`` in the
checkpoint's header and asks the application that declared that kind
(:class:`equiscale.applications.CheckpointKind`) for the checks of its model. This module knows no
application by name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

if TYPE_CHECKING:
    from equiscale.applications import Application

__all__ = ["EquivarianceCheck", "CheckOptions", "CheckResult", "checkpoint_file", "checkpoint_kind", "expect_kind",
           "expand_committees", "checkpoint_checks", "measure_checks", "format_table", "markdown_table"]


@dataclass(frozen=True)
class EquivarianceCheck:
    """One row of an equivariance table: what is checked, under which group, and how.

    ``measure(dtype, generator)`` returns the relative equivariance error with the function and
    its inputs in ``dtype`` (``torch.float64`` or ``torch.float32``).
    """

    name: str
    group: str
    measure: Callable[[torch.dtype, torch.Generator], float]


@dataclass(frozen=True)
class CheckOptions:
    """What an application's check function is asked for.

    Attributes:
        label: prefix of the check names (default: the kind of model).
        rollout: models that step in time: also check a rollout of this many steps (0 or 1: one step).
        samples: random group elements per check.
        seed: seeds the probe inputs an application builds (structures, fields).
    """

    label: str | None = None
    rollout: int = 0
    samples: int = 4
    seed: int = 0


@dataclass(frozen=True)
class CheckResult:
    """The measured errors of one :class:`EquivarianceCheck`."""

    name: str
    group: str
    float64: float
    float32: float


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint file of ``path``: the file itself, or ``best.pt`` (else ``last.pt``) of a directory."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds no best.pt or last.pt: not a training run directory")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def expand_committees(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """``paths`` with each committee run directory (trained with ``--ensemble``) replaced by its members.

    Every member of a committee is a model of its own, so each is checked on its own.
    """
    from equiscale.uncertainty.files import is_committee, read_committee

    expanded: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and is_committee(path):
            expanded.extend(path / member for member in read_committee(path)["members"])
        else:
            expanded.append(path)
    return expanded


def _load(path: str | os.PathLike) -> tuple[Path, dict[str, Any], str]:
    from equiscale.train import load_checkpoint

    file = checkpoint_file(path)
    state = load_checkpoint(file)
    return file, state, str(state["header"]["kind"])


def expect_kind(path: str | os.PathLike, kind: str, applications: Sequence[Application] | None = None) -> Path:
    """The checkpoint file of ``path`` (a run directory gives its best.pt), which must be of ``kind``.

    Raises:
        ValueError: a checkpoint of another kind; the message names the command that evaluates
            that kind when an application (of ``applications``, default the installed ones) has one.
    """
    from equiscale.applications import discover

    file, _, found = _load(path)
    if found != kind:
        applications = discover() if applications is None else applications
        evaluates = any(c.verb == "evaluate" and c.task == found for a in applications for c in a.commands)
        hint = f": use `equiscale evaluate {found}`" if evaluates else ""
        raise ValueError(f"{file} holds a {found!r} checkpoint, not a {kind!r} one{hint}")
    return file


def checkpoint_kind(path: str | os.PathLike) -> str:
    """The kind stored in the checkpoint's header (``"fluid"``, ``"potential"``, ...); a run directory works too.

    Raises:
        FileNotFoundError: no such file, or a directory without ``best.pt``/``last.pt``.
        ValueError: unreadable, or not an equiscale checkpoint.
    """
    return _load(path)[2]


def checkpoint_checks(path: str | os.PathLike, options: CheckOptions | None = None,
                      applications: Sequence[Application] | None = None,
                      **option_values: Any) -> tuple[str, list[EquivarianceCheck]]:
    """The equivariance checks of a trained model and a one-line description of what they test.

    Args:
        path: a checkpoint (``best.pt``/``last.pt``) or a run directory.
        options: what to check (:class:`CheckOptions`); or give its fields as keywords
            (``rollout=10``).
        applications: where to look up the checkpoint's kind (default: the installed applications).

    Raises:
        FileNotFoundError, ValueError: no checkpoint there, or not one of a kind an installed
            application declares.
    """
    from equiscale.applications import discover, find_checkpoint_kind, load_function

    options = options if options is not None else CheckOptions(**option_values)
    file, state, kind = _load(path)
    declaration = find_checkpoint_kind(kind, discover() if applications is None else applications)
    return load_function(declaration.checks)(file, state, options)


def measure_checks(checks: Sequence[EquivarianceCheck], seed: int = 0, progress: bool = False) -> list[CheckResult]:
    """Run every check in float64 and float32, each from a generator seeded with ``seed``."""
    from equiscale.train.progress import progress_bar

    results = []
    for check in progress_bar(list(checks), enabled=progress, desc="equivariance checks", unit="check", leave=False):
        errors = [check.measure(dtype, torch.Generator().manual_seed(seed)) for dtype in (torch.float64, torch.float32)]
        results.append(CheckResult(check.name, check.group, *errors))
    return results


def format_table(results: Sequence[CheckResult]) -> str:
    """A plain-text table: check, group, float64 and float32 errors."""
    width = max([len(r.name) for r in results] + [5])
    group_width = max([len(r.group) for r in results] + [5])
    header = f"{'check':{width}s}  {'group':{group_width}s}  {'float64':>9s}  {'float32':>9s}"
    lines = [header, "-" * len(header)]
    lines += [f"{r.name:{width}s}  {r.group:{group_width}s}  {r.float64:9.1e}  {r.float32:9.1e}" for r in results]
    return "\n".join(lines)


def markdown_table(results: Sequence[CheckResult]) -> str:
    """The same table in markdown."""
    lines = ["| check | group | float64 | float32 |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.group} | {r.float64:.1e} | {r.float32:.1e} |" for r in results]
    return "\n".join(lines)
