"""The demo's sections, in the order they run: name -> ``"module:function"``.

Each installed application declares its section (:class:`equiscale.applications.DemoSection`);
they run in increasing ``order``, and the core's symmetry check runs last because it measures the
models the other sections trained. A section function has the signature
``section(ctx: DemoContext) -> SectionResult`` (see :mod:`equiscale.demo.context`) and is imported
only when it runs.
"""
from __future__ import annotations

from typing import Callable, Sequence

from equiscale.applications import Application, discover, load_function

__all__ = ["SECTIONS", "SECTION_NAMES", "SYMMETRY", "available_sections", "section_names", "load_section"]

SYMMETRY = ("symmetry", "equiscale.demo.symmetry:section_symmetry")


def available_sections(applications: Sequence[Application] | None = None) -> dict[str, str]:
    """Every section of ``applications`` (default: the installed ones) by order, then the symmetry check."""
    applications = discover() if applications is None else applications
    declared = sorted((d for a in applications for d in a.demo_sections), key=lambda d: (d.order, d.name))
    return {**{d.name: d.function for d in declared}, SYMMETRY[0]: SYMMETRY[1]}


def section_names(applications: Sequence[Application] | None = None) -> list[str]:
    """The names of :func:`available_sections`, in the order they run."""
    return list(available_sections(applications))


SECTIONS: dict[str, str] = available_sections()
SECTION_NAMES: list[str] = list(SECTIONS)


def load_section(name: str, applications: Sequence[Application] | None = None) -> Callable:
    """The section function called ``name`` (from ``applications`` when given, else the installed ones)."""
    sections = SECTIONS if applications is None else available_sections(applications)
    if name not in sections:
        raise ValueError(f"unknown demo section {name!r}; known: {', '.join(sections)}")
    return load_function(sections[name])
