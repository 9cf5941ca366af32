"""The steerable section: 3D electrostatics, charge density -> electric field, with an SO(3)-steerable CNN.

Runs :func:`equiscale.fields.efield.run_efield_demo` (random neutral charge densities on a
periodic grid, E = -grad phi from an FFT Poisson solve; an SO(3)-steerable CNN against plain 3D CNNs
trained for the same time; equivariance under the 24 cube rotations and under random rotations),
links its report and figures from the demo's report, and registers the trained models with the
symmetry section (random rotations of the cube, which map the grid onto itself, in float64 and float32,
each model rebuilt from its checkpoint in that dtype).
"""
from __future__ import annotations

from equiscale.demo.context import DemoContext, SectionResult, SummaryRow

__all__ = ["section_steerable"]


def section_steerable(ctx: DemoContext) -> SectionResult:
    """Train and compare the field models in ``out/steerable``; the markdown links its figures."""
    from equiscale.check import CheckOptions, checkpoint_checks
    from equiscale.fields.efield import EFIELD_MODELS, run_efield_demo

    folder = ctx.folder("steerable")
    ctx.log("training an SO(3)-steerable CNN and plain 3D CNNs: charge density -> electric field")
    result = run_efield_demo(folder, quick=ctx.quick, seed=ctx.seed, progress=ctx.progress)
    for name in result["models"]:  # rebuilt from their checkpoints in each dtype, as `equiscale check` does
        options = CheckOptions(label=f"field {EFIELD_MODELS[name]}", seed=ctx.seed)
        ctx.add_checks(checkpoint_checks(folder / name, options)[1])
    prefix = ctx.relative(folder)
    markdown = result["markdown"]
    for figure in result["figures"]:
        markdown = markdown.replace(f"]({figure.name})", f"]({prefix}/{figure.name})")
    summary = [SummaryRow("steerable", row["model"],
                          f"E error {row['error']:.3f}, equivariance (cube) {row['equivariance']:.1e}, "
                          f"(random rotations) {row['equivariance_random']:.1e}")
               for row in result["rows"]]
    metrics = {f"efield_{i}_{key}": float(row[key]) for i, row in enumerate(result["rows"])
               for key in ("error", "equivariance", "equivariance_random")}
    return SectionResult("Steerable: 3D electrostatics", markdown, figures=list(result["figures"]), summary=summary,
                         metrics=metrics)
