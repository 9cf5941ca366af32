"""Smooth cutoff envelopes: ``f(r)`` equal to 1 at ``r = 0`` and 0 for ``r >= cutoff``.

Each maps ``r`` of shape ``(...,)`` to ``(...,)``. Multiplying a radial basis by an envelope makes
the interaction go smoothly to zero at the cutoff, so energies and forces stay continuous when
atoms enter or leave a neighbourhood.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from equiscale.nn.points.radial import _check_positive, _check_r

__all__ = ["PolynomialCutoff", "CosineCutoff"]


class PolynomialCutoff(nn.Module):
    r"""The polynomial envelope of DimeNet (also used by NequIP), with :math:`x = r / r_c`:

    .. math:: f(x) = 1 - \frac{(p+1)(p+2)}{2} x^p + p(p+2) x^{p+1} - \frac{p(p+1)}{2} x^{p+2}
              \quad (x < 1), \qquad f(x) = 0 \quad (x \ge 1).

    Since :math:`f'(x) = -\frac{p(p+1)(p+2)}{2} x^{p-1} (1 - x)^2`, the value and the first two
    derivatives vanish at the cutoff; near ``r = 0``, :math:`f = 1 - O(x^p)`.

    Args:
        cutoff: :math:`r_c`.
        p: the polynomial order (NequIP's default is 6).

    Shapes: ``r`` ``(...,)`` -> ``(...,)``.
    """

    def __init__(self, cutoff: float = 5.0, p: float = 6.0) -> None:
        super().__init__()
        self.cutoff = _check_positive("cutoff", cutoff)
        self.p = _check_positive("p", p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        p = self.p
        x = r / self.cutoff
        xp = x.pow(p)
        f = 1.0 - 0.5 * (p + 1.0) * (p + 2.0) * xp + p * (p + 2.0) * xp * x - 0.5 * p * (p + 1.0) * xp * x * x
        return f * (x < 1.0).to(r.dtype)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, p={self.p}"


class CosineCutoff(nn.Module):
    r"""The cosine envelope of Behler-Parrinello and SchNet:

    .. math:: f(r) = \tfrac12\left(\cos(\pi r / r_c) + 1\right) \quad (r < r_c), \qquad 0 \ \text{otherwise}.

    Its value and first derivative vanish at the cutoff.

    Shapes: ``r`` ``(...,)`` -> ``(...,)``.
    """

    def __init__(self, cutoff: float = 5.0) -> None:
        super().__init__()
        self.cutoff = _check_positive("cutoff", cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        f = 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0)
        return f * (r < self.cutoff).to(r.dtype)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}"
