"""``equiscale demo``: every scale end to end, with a report and figures.

The demo is a list of independent sections (:mod:`equiscale.demo.sections`), each a function
``section(ctx: DemoContext) -> SectionResult``:

* ``continuum``: 2D decaying turbulence; a C(4) G-CNN, a CNN and a CNN with rotation augmentation
  trained for the same time; one-step, rollout and equivariance errors; rollout figures.
* ``atomistic``: EMT copper; the equivariant potential; held-out errors with a parity plot; NVE
  molecular dynamics through the ASE calculator with an energy-conservation plot.
* ``symmetry``: the equivariance of the symmetry core, measured live, and of every model the
  sections above trained, in float64 and float32.

``run_demo(out, quick=True)`` runs them and writes ``out/report.md`` after each one.
"""
from equiscale.demo.context import DemoContext, SectionResult, SummaryRow
from equiscale.demo.runner import DemoResult, default_out, run_demo
from equiscale.demo.sections import SECTION_NAMES, SECTIONS, load_section

__all__ = ["run_demo", "default_out", "DemoResult", "DemoContext", "SectionResult", "SummaryRow", "SECTIONS",
           "SECTION_NAMES", "load_section"]
