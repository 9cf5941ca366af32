"""Helpers for the grid-layer tests: equivariance checked at every element of the group."""
from __future__ import annotations

from typing import Any, Callable

import torch

from equiscale.testing import GridField


def error_at_all_elements(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, group: Any, in_action: Any,
                          out_action: Any, elements: list[int] | None = None) -> float:
    """``max_g |fn(g.x) - g.fn(x)| / max|fn(x)|`` over all (or the given) elements of ``group``."""
    with torch.no_grad():
        y = fn(x)
        worst = 0.0
        for g in (group.elements().tolist() if elements is None else elements):
            g = torch.tensor(g)
            moved = in_action.apply(group, g, x.double(), None).to(x.dtype)
            expected = out_action.apply(group, g, y.double(), None)
            worst = max(worst, float((fn(moved).double() - expected).abs().max() / y.abs().max()))
    return worst


def regular(group: Any) -> GridField:
    """Regular features ``(B, C, |G|, H, W)``."""
    return GridField(group.regular_representation(), axis=-3)


SCALAR = GridField(None)
