"""``equiscale demo``: measure, live, that the symmetry core is equivariant to machine precision.

Each row applies a function to random inputs, transforms the input by random group elements and
reports the relative error ``max |f(g.x) - g.f(x)| / max |f(x)|`` in float64 and float32.
Later scales (fluid surrogate, interatomic potential, steerable convolutions) add their own rows.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import torch

from equiscale import groups, o3
from equiscale.testing import GridField, equivariance_error

__all__ = ["run_demo"]


def _harmonics_row(lmax: int) -> tuple[str, Callable, Callable]:
    irreps = o3.Irreps.spherical_harmonics(lmax)

    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        x = torch.randn(256, 3, dtype=dtype, generator=generator)
        fn = lambda v: o3.spherical_harmonics(irreps, v, normalize=True)  # noqa: E731
        return equivariance_error(fn, x, groups.O3(), "1o", irreps, generator=generator)

    return f"spherical harmonics, l = 0..{lmax}", "O(3)", measure


def _clebsch_gordan_row(l1: int, l2: int, l3: int) -> tuple[str, Callable, Callable]:
    parity = (-1) ** (l1 + l2)
    ir1, ir2, ir3 = o3.Irrep(l1, (-1) ** l1), o3.Irrep(l2, (-1) ** l2), o3.Irrep(l3, parity)

    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        coefficients = o3.wigner_3j(l1, l2, l3, dtype=dtype)
        a = torch.randn(64, ir1.dim, dtype=dtype, generator=generator)
        b = torch.randn(64, ir2.dim, dtype=dtype, generator=generator)
        fn = lambda u, v: torch.einsum("ijk,ni,nj->nk", coefficients, u, v)  # noqa: E731
        return equivariance_error(fn, (a, b), groups.O3(), [str(ir1), str(ir2)], str(ir3), generator=generator)

    return f"Clebsch-Gordan product {ir1} x {ir2} -> {ir3}", "O(3)", measure


def _grid_gradient_row() -> tuple[str, Callable, Callable]:
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

    return "gradient of a grid field (vector field)", "D(4)", measure


def _group_conv_row() -> tuple[str, Callable, Callable]:
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

    return "G-CNN: lifting + group conv + pooling", "C(4)", measure


def _decomposition_row(group: Any) -> tuple[str, Callable, Callable]:
    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        rho = group.regular_representation()
        irreps, change = rho.decompose()
        elements = group.elements()
        block = torch.block_diag
        worst = 0.0
        for g in elements:
            expected = block(*[ir(g) for ir in irreps]).to(dtype)
            actual = (change.to(dtype) @ rho(g).to(dtype) @ change.to(dtype).T)
            worst = max(worst, float((actual - expected).abs().max()))
        return worst

    return f"regular representation of {group.name} into irreps", group.name, measure


def run_demo(quick: bool = False, seed: int = 0) -> list[tuple[str, str, float, float]]:
    """Print a table of measured equivariance errors and return its rows."""
    lmax = 4 if quick else 8
    rows = [
        _harmonics_row(lmax),
        _clebsch_gordan_row(1, 2, 2),
        _clebsch_gordan_row(2, 3, 4),
        _grid_gradient_row(),
        _group_conv_row(),
        _decomposition_row(groups.D(4)),
        _decomposition_row(groups.C(6)),
    ]
    start = time.perf_counter()
    print("equiscale: equivariance of the symmetry core, measured at random group elements")
    print("error = max |f(g.x) - g.f(x)| / max |f(x)|\n")
    header = f"{'check':48s} {'group':6s} {'float64':>10s} {'float32':>10s}"
    print(header)
    print("-" * len(header))
    results = []
    for name, group_name, measure in rows:
        errors = [measure(dtype, torch.Generator().manual_seed(seed)) for dtype in (torch.float64, torch.float32)]
        results.append((name, group_name, *errors))
        print(f"{name:48s} {group_name:6s} {errors[0]:10.1e} {errors[1]:10.1e}")
    print(f"\n{len(rows)} checks in {time.perf_counter() - start:.1f} s")
    return results
