"""What the demo's sections share: the context they run in and the result each returns.

A section is a function ``section(ctx: DemoContext) -> SectionResult``. It writes its files under
``ctx.folder(name)``, may register equivariance checks of the models it trained with
``ctx.add_checks`` (the symmetry section measures them all), and returns markdown, the paths of
its figures and rows for the summary table.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["DemoContext", "SectionResult", "SummaryRow"]


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary table: the section, what was measured, and the result as text."""

    section: str
    item: str
    result: str


@dataclass
class SectionResult:
    """What a section returns: its report text (markdown, without the title), figures and summary rows.

    ``metrics`` holds the measured numbers by name (written to ``summary.json``); ``seconds`` and
    ``failed`` are filled in by the runner.
    """

    title: str
    markdown: str
    figures: list[Path] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    failed: bool = False


@dataclass
class DemoContext:
    """The settings every section reads and the registry of models to check.

    Attributes:
        out: the demo's output directory (``report.md`` is written there).
        quick: tiny sizes and budgets, the same code paths.
        seed: seeds data, weights and checks.
        progress: show progress bars (tqdm on stderr).
        checks: equivariance checks (:class:`equiscale.check.EquivarianceCheck`) registered by the
            sections that trained models, measured by the symmetry section.
    """

    out: Path
    quick: bool = False
    seed: int = 0
    progress: bool = False
    checks: list[Any] = field(default_factory=list)

    def folder(self, name: str) -> Path:
        """``out/name``, created if needed: where a section keeps its files."""
        path = self.out / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to ``out`` with forward slashes, as report.md links it."""
        return Path(os.path.relpath(path, self.out)).as_posix()

    def image(self, path: str | os.PathLike, caption: str) -> str:
        """A markdown image line for a figure under ``out``."""
        return f"![{caption}]({self.relative(path)})"

    def add_checks(self, checks: Sequence[Any]) -> None:
        """Register equivariance checks of trained models for the symmetry section."""
        self.checks.extend(checks)

    def log(self, message: str) -> None:
        """Print a progress line (without breaking a progress bar)."""
        from equiscale.train.progress import write_line

        write_line(f"  {message}")
