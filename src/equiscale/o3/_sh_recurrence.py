"""Real spherical harmonics of any degree by numerically stable recurrences (plain torch ops).

This is the plain-op path: any ``l``, any dtype, differentiable to every order by autograd, and
traceable by ``torch.compile`` (inductor fuses it). The fast kernel
(:mod:`equiscale.o3._sh_fast`) uses it for second derivatives and under ``torch.compile``. The
polar factor uses the normalised three-term recurrence of the associated Legendre functions
(forward in ``l`` at fixed ``m``, stable), the azimuthal factor the complex recurrence
``(z + i x)^(m+1) = (z + i x)^m (z + i x)`` (a rotation, stable). The conventions are those of
:mod:`equiscale.o3._sh_coefficients`.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch

from equiscale.o3._sh_coefficients import degree_scale, recurrence_constants


def azimuthal_factors(x: torch.Tensor, z: torch.Tensor, mmax: int) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """``C_m = Re (z + i x)^m`` and ``S_m = Im (z + i x)^m`` for ``m = 0..mmax`` (lists of tensors)."""
    cos = [torch.ones_like(x)]
    sin = [torch.zeros_like(x)]
    for _ in range(mmax):
        c, s = cos[-1], sin[-1]
        cos.append(c * z - s * x)
        sin.append(s * z + c * x)
    return cos, sin


def polar_factors(y: torch.Tensor, r2: torch.Tensor, lmax: int) -> Dict[Tuple[int, int], torch.Tensor]:
    """``Pbar_lm(y, r^2) = sqrt((l-m)!/(l+m)!) r^(l-m) P_l^(m)(y/r)`` for ``0 <= m <= l <= lmax``."""
    diagonal, coeffs = recurrence_constants(lmax)
    out: Dict[Tuple[int, int], torch.Tensor] = {}
    for m in range(lmax + 1):
        out[(m, m)] = torch.full_like(y, diagonal[m])
        for l in range(m + 1, lmax + 1):
            a, b = coeffs[(l, m)]
            value = (a * y) * out[(l - 1, m)]
            if l >= m + 2:
                value = value - b * (r2 * out[(l - 2, m)])
            out[(l, m)] = value
    return out


def spherical_harmonics_recurrence(ls: Sequence[int], x: torch.Tensor, normalization: str) -> torch.Tensor:
    """The homogeneous harmonics of the degrees ``ls`` (e3nn order, repeats allowed) at ``x`` ``(N, 3)``.

    Returns ``(N, sum(2l+1))`` in x's dtype (no normalisation of ``x``).
    """
    lmax = max(ls)
    xx, yy, zz = x.unbind(-1)
    r2 = xx * xx + yy * yy + zz * zz
    cos, sin = azimuthal_factors(xx, zz, lmax)
    polar = polar_factors(yy, r2, lmax)
    columns: List[torch.Tensor] = []
    for l in ls:
        scale = degree_scale(l, normalization) * math.sqrt(2 * l + 1)
        for m in range(-l, l + 1):
            am = abs(m)
            factor = scale * (math.sqrt(2.0) if m else 1.0)
            trig = sin[am] if m < 0 else cos[am]
            columns.append(polar[(l, am)] * trig * factor if m else polar[(l, 0)] * factor)
    return torch.stack(columns, dim=-1)


def spherical_harmonics_plain(ls: Sequence[int], x: torch.Tensor, normalize: bool, normalization: str) -> torch.Tensor:
    """e3nn's semantics in plain ops: ``x / max(|x|, 1e-12)`` if ``normalize``, then the homogeneous
    harmonics (so a zero vector gives ``(1, 0, ...)``, as in e3nn). ``x`` ``(N, 3)`` -> ``(N, D)``."""
    if normalize:
        x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)
    return spherical_harmonics_recurrence(ls, x, normalization)
