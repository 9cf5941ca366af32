"""Run the demo's sections in turn, keep ``report.md`` up to date, and print the summary."""
from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from equiscale.demo.context import DemoContext, SectionResult, SummaryRow
from equiscale.demo.report import Report, summary_text
from equiscale.applications import Application
from equiscale.demo.sections import SECTION_NAMES, load_section, section_names

__all__ = ["DemoResult", "run_demo", "default_out"]

Section = Callable[[DemoContext], SectionResult]


@dataclass
class DemoResult:
    """What a demo run produced: its directory, report, finished sections and whether it was cut short."""

    out: Path
    report: Path
    sections: list[SectionResult]
    interrupted: bool = False

    @property
    def failed(self) -> list[str]:
        """Titles of the sections that raised an error."""
        return [s.title for s in self.sections if s.failed]

    @property
    def summary(self) -> list[SummaryRow]:
        """Every summary row, in section order."""
        return [row for s in self.sections for row in s.summary]


def default_out() -> Path:
    """``runs/demo-YYYYmmdd-HHMMSS`` in the current directory."""
    return Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")


def _resolve(sections: Sequence[str | Section] | None,
             applications: Sequence[Application] | None = None) -> list[tuple[str, Section]]:
    default = SECTION_NAMES if applications is None else section_names(applications)
    chosen = default if sections is None else list(sections)
    if not chosen:
        raise ValueError("no demo section chosen")
    resolved = []
    for item in chosen:
        if isinstance(item, str):
            resolved.append((item, load_section(item, applications)))
        else:
            resolved.append((getattr(item, "__name__", "section").removeprefix("section_"), item))
    return resolved


def _preamble(quick: bool, seed: int, threads: int | None) -> str:
    import torch

    mode = "quick (tiny sizes, the same code paths)" if quick else "full"
    return (f"Mode: {mode}; seed {seed}; {time.strftime('%Y-%m-%d %H:%M:%S')}. Machine: {os.cpu_count()} CPU cores "
            f"({platform.machine()}), Python {platform.python_version()}, torch {torch.__version__}, "
            f"{threads or torch.get_num_threads()} torch thread(s). Errors are relative unless a unit is given; "
            f"equivariance errors are max |f(g.x) - g.f(x)| / max |f(x)| at random group elements.")


def _failure(name: str, error: Exception, ctx: DemoContext, seconds: float) -> SectionResult:
    log = ctx.out / f"{name}-error.txt"
    log.write_text("".join(traceback.format_exception(error)))
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"  section {name} failed: {type(error).__name__}: {message} (traceback in {log})", file=sys.stderr)
    return SectionResult(title=name, markdown=f"Failed: `{type(error).__name__}: {message}` (traceback in "
                         f"`{ctx.relative(log)}`).", summary=[SummaryRow(name, "section", "FAILED: " + message)],
                         seconds=seconds, failed=True)


def run_demo(out: str | os.PathLike | None = None, quick: bool = False, seed: int = 0,
             sections: Sequence[str | Section] | None = None, threads: int | None = 1, progress: bool | None = None,
             stop_on_error: bool = False, applications: Sequence[Application] | None = None) -> DemoResult:
    """Run the demo sections, writing ``out/report.md`` after each, and print a summary table.

    Args:
        out: output directory (default :func:`default_out`).
        quick: tiny sizes and budgets (about a minute), the same code paths.
        seed: seeds data, weights and checks.
        sections: names of :func:`equiscale.demo.sections.available_sections` or section functions, in
            order (default: all).
        threads: torch CPU threads while the demo runs (None: leave as is).
        progress: progress bars on stderr (default: when stderr is a terminal).
        stop_on_error: re-raise a section's error instead of recording it and going on.
        applications: whose sections to run (default: the installed applications).

    Returns:
        A :class:`DemoResult`. A section that raises is recorded as failed and the others still
        run. On Ctrl-C the report keeps the finished sections, then KeyboardInterrupt propagates.
    """
    import torch

    chosen = _resolve(sections, applications)
    out = Path(out) if out is not None else default_out()
    out.mkdir(parents=True, exist_ok=True)
    progress = sys.stderr.isatty() if progress is None else progress
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    ctx = DemoContext(out=out, quick=quick, seed=seed, progress=progress)
    report = Report(out / "report.md", _preamble(quick, seed, threads))
    report.write()
    result = DemoResult(out, report.path, report.sections)
    start = time.perf_counter()
    print(f"equiscale demo ({'quick' if quick else 'full'}): {len(chosen)} sections, writing {report.path}", flush=True)
    try:
        for index, (name, section) in enumerate(chosen, 1):
            print(f"[{index}/{len(chosen)}] {name}", flush=True)
            begin = time.perf_counter()
            try:
                finished = section(ctx)
            except KeyboardInterrupt:
                report.note = (f"Interrupted during the {name} section, {time.perf_counter() - begin:.0f} s into it: "
                               f"the sections below finished.")
                report.write()
                result.interrupted = True
                raise
            except Exception as error:  # noqa: BLE001 - one failing section must not lose the others
                if stop_on_error:
                    raise
                finished = _failure(name, error, ctx, time.perf_counter() - begin)
            finished.seconds = time.perf_counter() - begin
            report.add(finished)
            print(f"    {name} done in {finished.seconds:.0f} s", flush=True)
        report.closing = f"{len(chosen)} section(s) in {time.perf_counter() - start:.0f} s."
        report.write()
    finally:
        if threads is not None:
            torch.set_num_threads(previous_threads)
        if report.rows:
            print("\n" + summary_text(report.rows))
        print(f"\n{'interrupted' if result.interrupted else 'finished'} after {time.perf_counter() - start:.0f} s; "
              f"report: {report.path}", flush=True)
    return result
