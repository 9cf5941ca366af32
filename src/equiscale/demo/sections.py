"""The demo's sections, in the order they run: name -> ``"module:function"``.

Each function has the signature ``section(ctx: DemoContext) -> SectionResult`` (see
:mod:`equiscale.demo.context`) and is imported only when it runs. The symmetry section comes last
because it measures the models the other sections trained. To add a section, add one line here,
e.g. ``"name": "package.module:section_name"`` before ``"symmetry"``.
"""
from __future__ import annotations

import importlib
from typing import Callable

__all__ = ["SECTIONS", "SECTION_NAMES", "load_section"]

SECTIONS: dict[str, str] = {
    "continuum": "equiscale.demo.continuum:section_continuum",
    "atomistic": "equiscale.demo.atomistic:section_atomistic",
    "steerable": "equiscale.demo.steerable:section_steerable",
    "symmetry": "equiscale.demo.symmetry:section_symmetry",
}
SECTION_NAMES: list[str] = list(SECTIONS)


def load_section(name: str) -> Callable:
    """The section function registered as ``name``; ValueError naming the known sections otherwise."""
    if name not in SECTIONS:
        raise ValueError(f"unknown demo section {name!r}; known: {', '.join(SECTION_NAMES)}")
    module, function = SECTIONS[name].split(":")
    return getattr(importlib.import_module(module), function)
