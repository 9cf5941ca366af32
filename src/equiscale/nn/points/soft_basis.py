"""e3nn's soft one-hot encodings of a scalar: ``soft_unit_step``, ``soft_one_hot_linspace``, ``bessel``.

Same signatures and numbers as ``e3nn.math`` (0.6), written in plain differentiable torch ops (no
custom autograd function), so they run under ``torch.compile(fullgraph=True)`` and
``torch.export`` and can be differentiated any number of times. Two deliberate differences, both
where e3nn loses accuracy or gives NaN:

- ``basis="smooth_finite"`` uses :math:`e^2` in double precision (e3nn multiplies by a float32
  ``torch.exp(torch.tensor(2.0))``, so its float64 values are off by ~3e-8 relative);
- ``basis="bessel"`` at ``x == start`` gives the finite limit :math:`\\sqrt{2/c}\\,n\\pi/c` (e3nn gives
  NaN from 0/0; with ``cutoff=True`` both give 0 beyond that point, we give 0 there too).
"""
from __future__ import annotations

import math

import torch

from equiscale.errors import InvalidArgumentError

__all__ = ["soft_unit_step", "soft_one_hot_linspace", "bessel"]

_BASES = ("gaussian", "cosine", "smooth_finite", "fourier", "bessel")
_E2 = math.exp(2.0)


def soft_unit_step(x: torch.Tensor) -> torch.Tensor:
    r"""The smooth (:math:`C^\infty`) unit step :math:`x \mapsto \theta(x)\, e^{-1/x}`.

    Args:
        x: any tensor, shape ``(...)``.

    Returns:
        a tensor of the same shape and dtype; 0 for ``x <= 0``, tending to 1 as ``x`` grows.
    """
    positive = x > 0.0
    safe = torch.where(positive, x, torch.ones_like(x))  # no 1/0 in the branch that is thrown away
    return torch.where(positive, torch.exp(-1.0 / safe), torch.zeros_like(x))


def soft_one_hot_linspace(
    x: torch.Tensor, start: float, end: float, number: int, basis: str | None = None, cutoff: bool | None = None
) -> torch.Tensor:
    r"""Project ``x`` on ``number`` smooth functions spread evenly over ``[start, end]`` (e3nn's convention).

    The functions are :math:`y_i(x) = f_i(x) / Z` with :math:`Z` chosen (where the family allows)
    so that :math:`\langle \sum_i y_i(x)^2 \rangle_x \approx 1` over the interval. The centres are
    ``linspace(start, end, number)``; with ``cutoff=True`` they are the inner ``number`` points of
    ``linspace(start, end, number + 2)``, so that every function (nearly) vanishes outside
    ``(start, end)``.

    Args:
        x: the values to encode, shape ``(...)``.
        start: the lower end of the interval.
        end: the upper end of the interval.
        number: the number of functions N (at least 2 for the centred bases without cutoff).
        basis: one of ``'gaussian'`` (:math:`e^{-d^2}/1.12`), ``'cosine'`` (:math:`\cos(\pi d/2)` on
            :math:`|d| < 1`), ``'smooth_finite'`` (:math:`1.14136\, e^2\, u(d+1)\, u(1-d)` with ``u`` the
            soft unit step), ``'fourier'`` (cosines, or sines with ``cutoff``, of
            :math:`\pi i (x - start)/(end - start)`) or ``'bessel'`` (:math:`\sqrt{2/c}\sin(n\pi t/c)/t`,
            ``t = x - start``, ``c = end - start``: not normalised); ``d`` is the distance to a
            centre in units of the spacing between centres.
        cutoff: required, True or False (see above).

    Returns:
        a tensor of shape ``(..., number)`` in the dtype of ``x``.

    Raises:
        InvalidArgumentError: ``cutoff`` is not a bool, ``basis`` is unknown, or ``number`` is too small.
    """
    if cutoff not in (True, False):
        raise InvalidArgumentError(f"cutoff must be specified as True or False, got {cutoff!r}")
    if basis not in _BASES:
        raise InvalidArgumentError(f'basis="{basis}" is not a valid entry: use one of {", ".join(_BASES)}')
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise InvalidArgumentError(f"number must be a positive int, got {number!r}")
    if not end > start:
        raise InvalidArgumentError(f"end ({end}) must be larger than start ({start})")
    if basis == "fourier":
        t = (x[..., None] - start) / (end - start)
        norm = math.sqrt(0.25 + number / 2)
        if not cutoff:
            i = torch.arange(0, number, dtype=x.dtype, device=x.device)
            return torch.cos(math.pi * i * t) / norm
        i = torch.arange(1, number + 1, dtype=x.dtype, device=x.device)
        return torch.sin(math.pi * i * t) / norm * ((0 < t) & (t < 1)).to(x.dtype)
    if basis == "bessel":
        t = x[..., None] - start
        c = end - start
        roots = torch.arange(1, number + 1, dtype=x.dtype, device=x.device) * math.pi
        # sin(k t) / t = k sinc(k t / pi): the finite limit k at t = 0.
        out = math.sqrt(2 / c) * (roots / c) * torch.sinc(roots * t / (math.pi * c))
        if not cutoff:
            return out
        return out * ((t / c < 1) & (0 < t)).to(x.dtype)

    if not cutoff and number < 2:
        raise InvalidArgumentError(f"number must be at least 2 for basis={basis!r} without cutoff, got {number}")
    count = number if not cutoff else number + 2
    values = torch.linspace(start, end, count, dtype=x.dtype, device=x.device)
    step = values[1] - values[0]
    if cutoff:
        values = values[1:-1]
    d = (x[..., None] - values) / step
    if basis == "gaussian":
        return d.pow(2).neg().exp().div(1.12)
    if basis == "cosine":
        return torch.cos(math.pi / 2 * d) * ((d < 1) & (-1 < d)).to(x.dtype)
    return (1.14136 * _E2) * soft_unit_step(d + 1) * soft_unit_step(1 - d)


def bessel(x: torch.Tensor, n: int, x_max: float = 1.0) -> torch.Tensor:
    r"""e3nn's Bessel basis :math:`B_k(x) = \sqrt{2/x_{max}}\, \sin(k\pi x/x_{max}) / x`, ``k = 1..n``.

    Normalised so that :math:`\int_0^{x_{max}} x^2 B_k B_m\, dx = \delta_{km}` (DimeNet, eq. 7);
    at ``x = 0`` it is the finite limit :math:`\sqrt{2/x_{max}}\, k\pi/x_{max}`. Same numbers as
    ``e3nn.math.bessel`` (0.6).

    Args:
        x: the values, shape ``(...)``.
        n: the number of functions.
        x_max: the end of the interval.

    Returns:
        a tensor of shape ``(..., n)``.

    Raises:
        InvalidArgumentError: ``n`` is not a positive int.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidArgumentError(f"n must be a positive int, got {n!r}")
    k = torch.arange(1, n + 1, dtype=x.dtype, device=x.device) * (math.pi / x_max)
    return math.sqrt(2.0 / x_max) * k * torch.sinc(x[..., None] * k / math.pi)
