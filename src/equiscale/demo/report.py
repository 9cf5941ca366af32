"""The demo's report: ``report.md`` and ``summary.json``, rewritten atomically after every section."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from equiscale.demo.context import SectionResult, SummaryRow

__all__ = ["Report", "summary_markdown", "summary_text", "write_atomically"]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then ``os.replace`` it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def summary_markdown(rows: Sequence[SummaryRow]) -> str:
    """The summary rows as a markdown table."""
    lines = ["| section | model or check | result |", "|---|---|---|"]
    lines += [f"| {r.section} | {r.item} | {r.result} |" for r in rows]
    return "\n".join(lines)


def summary_text(rows: Sequence[SummaryRow]) -> str:
    """The summary rows as an aligned plain-text table."""
    widths = [max([len(getattr(r, k)) for r in rows] + [len(h)]) for k, h in (("section", "section"), ("item", "model or check"))]
    header = f"{'section':{widths[0]}s}  {'model or check':{widths[1]}s}  result"
    lines = [header, "-" * max(len(header), max((widths[0] + widths[1] + 4 + len(r.result) for r in rows), default=0))]
    lines += [f"{r.section:{widths[0]}s}  {r.item:{widths[1]}s}  {r.result}" for r in rows]
    return "\n".join(lines)


class Report:
    """``report.md`` of a demo run: a header, the summary table, then one part per finished section.

    Every :meth:`write` replaces the file atomically, so an interrupted demo leaves a readable
    report of the sections that finished.
    """

    def __init__(self, path: str | os.PathLike, preamble: str) -> None:
        self.path = Path(path)
        self.preamble = preamble
        self.sections: list[SectionResult] = []
        self.note = ""
        self.closing = ""

    @property
    def rows(self) -> list[SummaryRow]:
        """The summary rows of every finished section."""
        return [row for section in self.sections for row in section.summary]

    def add(self, result: SectionResult) -> None:
        """Append a finished section and rewrite the file."""
        self.sections.append(result)
        self.write()

    def text(self) -> str:
        """The whole report as markdown."""
        parts = ["# equiscale demo", self.preamble]
        if self.note:
            parts.append(f"**{self.note}**")
        if self.rows:
            parts += ["## Summary", summary_markdown(self.rows)]
        for section in self.sections:
            status = "failed after" if section.failed else "took"
            parts += [f"## {section.title}", f"*This section {status} {section.seconds:.0f} s.*", section.markdown.strip()]
        if self.closing:
            parts.append(f"*{self.closing}*")
        return "\n\n".join(parts) + "\n"

    def json(self) -> str:
        """Every section's title, time, status, figures and metrics as JSON (``summary.json``)."""
        import json

        return json.dumps({"note": self.note, "sections": [
            {"title": s.title, "seconds": round(s.seconds, 1), "failed": s.failed, "metrics": s.metrics,
             "figures": [Path(os.path.relpath(f, self.path.parent)).as_posix() for f in s.figures],
             "summary": [[r.section, r.item, r.result] for r in s.summary]} for s in self.sections]}, indent=1)

    def write(self) -> None:
        """Replace ``report.md`` (and ``summary.json`` beside it) atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path.with_name("summary.json"), self.json())
        write_atomically(self.path, self.text())
