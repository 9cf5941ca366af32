"""Convention and recurrence coefficients of the real spherical harmonics (e3nn 0.6 basis).

Convention (the one e3nn uses; checked against e3nn and scipy in the tests). The polar axis is
``y``; the azimuthal plane is spanned by ``(z, x)``. For a vector ``(x, y, z)`` with ``r^2 =
x^2 + y^2 + z^2`` and an order ``m`` in ``-l..l`` (stored at index ``l + m`` of the degree-``l``
block, blocks ordered by ``l``), the "component"-normalised harmonic is the homogeneous polynomial

    Y_lm(x) = N_l|m| * Q_l|m|(y, r^2) * T_m(z, x)

    T_m = Re (z + i x)^m   (m >= 0),      T_m = Im (z + i x)^|m|   (m < 0),
    Q_lm(y, r^2) = r^(l-m) P_l^(m)(y / r)  (P_l^(m): m-th derivative of the Legendre polynomial),
    N_lm = sqrt((2l + 1) (2 - delta_m0) (l - m)! / (l + m)!).

There is no Condon-Shortley phase: in the standard real basis (polar axis z', azimuth from x'
towards y') e3nn's ``(x, y, z)`` are ``(y', z', x')``. With this choice ``|Y^l(x)|^2 = 2l+1`` on the
unit sphere, and ``Y^1(x) = sqrt(3) (x, y, z)``. The other normalisations rescale each degree:
"integral" by ``1 / sqrt(4 pi)`` and "norm" by ``1 / sqrt(2l + 1)``.

Everything here is a pure function of integers (cached) and returns Python float64 numbers;
callers cast to the working dtype.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Tuple
from equiscale.errors import InvalidArgumentError

NORMALIZATIONS = ("integral", "component", "norm")


def degree_scale(l: int, normalization: str) -> float:
    """Factor that turns the "component" normalisation of degree ``l`` into ``normalization``."""
    if normalization == "component":
        return 1.0
    if normalization == "integral":
        return 1.0 / math.sqrt(4.0 * math.pi)
    if normalization == "norm":
        return 1.0 / math.sqrt(2 * l + 1)
    raise InvalidArgumentError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def recurrence_constants(lmax: int) -> Tuple[Tuple[float, ...], dict]:
    """Constants of the stable recurrence for ``Pbar_lm = sqrt((l-m)!/(l+m)!) Q_lm``.

    Returns ``(diagonal, coeffs)``: ``diagonal[m] = Pbar_mm`` (a number: ``Q_mm`` is constant), and
    ``coeffs[(l, m)] = (a, b)`` with ``Pbar_lm = a y Pbar_(l-1)m - b r^2 Pbar_(l-2)m`` for ``l > m``
    (``b = 0`` when ``l = m + 1``). Not cached: it is cheap, and ``torch.compile`` traces it.
    """
    diagonal = [1.0]
    for m in range(1, lmax + 1):
        diagonal.append(diagonal[-1] * math.sqrt((2 * m - 1) / (2 * m)))
    coeffs = {}
    for m in range(lmax + 1):
        for l in range(m + 1, lmax + 1):
            a = (2 * l - 1) / math.sqrt((l - m) * (l + m))
            b = math.sqrt((l + m - 1) * (l - m - 1) / ((l - m) * (l + m)))
            coeffs[(l, m)] = (a, b)
    return tuple(diagonal), coeffs


@lru_cache(maxsize=None)
def scaled_recurrence(lmax: int, normalization: str) -> Tuple[dict, Tuple[float, ...]]:
    """Constants of the one-op-per-step recurrence used by the fast kernel.

    The kernel computes rows ``R_lm = c_lm Pbar_l|m| T_m`` (one row per output ``(l, m)``, e3nn
    order) with ``c_lm`` chosen so that every step is a single fused multiply-add:

        R_mm = T_m,   R_(m+1)m = y R_mm,   R_lm = r^2 R_(l-2)m + v_lm y R_(l-1)m   (l >= m + 2),

    i.e. ``c_mm = 1 / Pbar_mm``, ``c_(m+1)m = c_mm / sqrt(2m+1)``, ``c_lm = -c_(l-2)m / b_lm`` and
    ``v_lm = a_lm c_lm / c_(l-1)m`` with ``(a, b)`` of :func:`recurrence_constants`. The ``c`` stay
    of order one for every ``l`` (no overflow, the recurrence keeps its stability).

    Returns ``(v, row_scale)``: ``v[(l, m)]`` for ``m >= 0`` and ``row_scale[l*l + l + m]`` with
    ``Y_lm = row_scale * R_lm`` in the requested normalisation.
    """
    diagonal, coeffs = recurrence_constants(lmax)
    c = {}
    v = {}
    for m in range(lmax + 1):
        c[(m, m)] = 1.0 / diagonal[m]
        if m + 1 <= lmax:
            c[(m + 1, m)] = c[(m, m)] / math.sqrt(2 * m + 1)
        for l in range(m + 2, lmax + 1):
            a, b = coeffs[(l, m)]
            c[(l, m)] = -c[(l - 2, m)] / b
            v[(l, m)] = a * c[(l, m)] / c[(l - 1, m)]
    row_scale = []
    for l in range(lmax + 1):
        base = math.sqrt(2 * l + 1) * degree_scale(l, normalization)
        for m in range(-l, l + 1):
            row_scale.append(base * (math.sqrt(2.0) if m else 1.0) / c[(l, abs(m))])
    return v, tuple(row_scale)
