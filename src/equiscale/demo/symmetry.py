"""The "Symmetry check" section: equivariance of the symmetry core and of every trained model.

Each row applies a function to random inputs, transforms the inputs by random group elements and
reports the relative error ``max |f(g.x) - g.f(x)| / max |f(x)|`` in float64 and float32. The core
rows are measured here; the trained-model rows are the checks the other sections registered with
``ctx.add_checks`` (see :mod:`equiscale.check`).
"""
from __future__ import annotations

from typing import Any

import torch

from equiscale import groups, o3
from equiscale.check import CheckResult, EquivarianceCheck, markdown_table, measure_checks
from equiscale.demo.context import DemoContext, SectionResult, SummaryRow
from equiscale.testing import GridField, equivariance_error

__all__ = ["core_checks", "section_symmetry"]


def _harmonics(lmax: int) -> EquivarianceCheck:
    irreps = o3.Irreps.spherical_harmonics(lmax)

    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        x = torch.randn(256, 3, dtype=dtype, generator=generator)
        fn = lambda v: o3.spherical_harmonics(irreps, v, normalize=True)  # noqa: E731
        return equivariance_error(fn, x, groups.O3(), "1o", irreps, generator=generator)

    return EquivarianceCheck(f"spherical harmonics, l = 0..{lmax}", "O(3)", measure)


def _clebsch_gordan(l1: int, l2: int, l3: int) -> EquivarianceCheck:
    parity = (-1) ** (l1 + l2)
    ir1, ir2, ir3 = o3.Irrep(l1, (-1) ** l1), o3.Irrep(l2, (-1) ** l2), o3.Irrep(l3, parity)

    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        coefficients = o3.wigner_3j(l1, l2, l3, dtype=dtype)
        a = torch.randn(64, ir1.dim, dtype=dtype, generator=generator)
        b = torch.randn(64, ir2.dim, dtype=dtype, generator=generator)
        fn = lambda u, v: torch.einsum("ijk,ni,nj->nk", coefficients, u, v)  # noqa: E731
        return equivariance_error(fn, (a, b), groups.O3(), [str(ir1), str(ir2)], str(ir3), generator=generator)

    return EquivarianceCheck(f"Clebsch-Gordan product {ir1} x {ir2} -> {ir3}", "O(3)", measure)


def _grid_gradient() -> EquivarianceCheck:
    group = groups.D(4)

    def gradient(field: torch.Tensor) -> torch.Tensor:
        # periodic central differences; x along columns, y along rows
        d_dx = (field.roll(-1, -1) - field.roll(1, -1)) / 2
        d_dy = (field.roll(-1, -2) - field.roll(1, -2)) / 2
        return torch.stack([d_dx, d_dy], dim=-3)

    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        field = torch.randn(4, 32, 32, dtype=dtype, generator=generator)
        vector = GridField(group.standard_representation(), axis=-3)
        return equivariance_error(gradient, field, group, GridField(), vector, n_samples=8, generator=generator)

    return EquivarianceCheck("gradient of a grid field (vector field)", "D(4)", measure)


def _group_conv() -> EquivarianceCheck:
    from equiscale import nn

    group = groups.C(4)

    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        with torch.random.fork_rng():  # seeded weights without touching the caller's RNG
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
            model = torch.nn.Sequential(
                nn.LiftingConv2d(1, 4, 5, group, padding=2, padding_mode="circular"),
                nn.GroupConv2d(4, 4, 5, group, padding=2, padding_mode="circular"),
                nn.GroupPool("max"),
            ).to(dtype)
        field = torch.randn(2, 1, 32, 32, dtype=dtype, generator=generator)
        return equivariance_error(model, field, group, GridField(), GridField(), n_samples=8, generator=generator)

    return EquivarianceCheck("G-CNN: lifting + group conv + pooling (untrained)", "C(4)", measure)


def _decomposition(group: Any) -> EquivarianceCheck:
    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        rho = group.regular_representation()
        irreps, change = rho.decompose()
        worst = 0.0
        for g in group.elements():
            expected = torch.block_diag(*[ir(g) for ir in irreps]).to(dtype)
            actual = change.to(dtype) @ rho(g).to(dtype) @ change.to(dtype).T
            worst = max(worst, float((actual - expected).abs().max()))
        return worst

    return EquivarianceCheck(f"regular representation of {group.name} into irreps", group.name, measure)


def core_checks(quick: bool = False) -> list[EquivarianceCheck]:
    """The live checks of the symmetry core (``quick``: spherical harmonics to l = 4 instead of 8)."""
    return [
        _harmonics(4 if quick else 8),
        _clebsch_gordan(1, 2, 2),
        _clebsch_gordan(2, 3, 4),
        _grid_gradient(),
        _group_conv(),
        _decomposition(groups.D(4)),
        _decomposition(groups.C(6)),
    ]


def _model_rows(results: list[CheckResult]) -> list[SummaryRow]:
    """One summary row per trained model: the worst of its checks."""
    models: dict[str, list[CheckResult]] = {}
    for r in results:
        models.setdefault(r.name.split(":")[0], []).append(r)
    return [SummaryRow("symmetry", f"{model} ({rows[0].group})",
                       f"equivariance {max(r.float64 for r in rows):.1e} (float64), {max(r.float32 for r in rows):.1e} (float32)")
            for model, rows in models.items()]


def section_symmetry(ctx: DemoContext) -> SectionResult:
    """Measure the core checks and the checks registered by earlier sections; one table."""
    core = measure_checks(core_checks(ctx.quick), seed=ctx.seed, progress=ctx.progress)
    trained = measure_checks(ctx.checks, seed=ctx.seed, progress=ctx.progress)
    text = ["Each row applies a function to random inputs, transforms the inputs by random group elements and "
            "reports max |f(g.x) - g.f(x)| / max |f(x)| with the function and its inputs in float64 and in float32. "
            "Exactly equivariant code sits at the rounding error of the precision (about 1e-16 and 1e-7); a model "
            "that only learned the symmetry, like the CNNs, sits far above it.",
            "### Symmetry core", markdown_table(core)]
    if trained:
        text += ["### Trained models",
                 "Each model under the group its application builds it for (the group column), on the probe inputs "
                 "of its checks; `equiscale check CHECKPOINT` measures any checkpoint the same way.",
                 markdown_table(trained)]
    else:
        text.append("No trained model was registered (no section that trains one ran).")
    summary = [SummaryRow("symmetry", f"symmetry core ({len(core)} checks)",
                          f"worst {max(r.float64 for r in core):.1e} (float64), {max(r.float32 for r in core):.1e} (float32)")]
    summary += _model_rows(trained)
    metrics = {f"{r.name} [{dtype}]": getattr(r, dtype) for r in core + trained for dtype in ("float64", "float32")}
    return SectionResult("Symmetry check", "\n\n".join(text), summary=summary, metrics=metrics)
