r"""Signals on the sphere: between spherical-tensor coefficients and samples on a grid (e3nn 0.6).

A band-limited signal ``f(x) = sum_{l <= lmax} F^l . Y^l(x)`` is held either as its
``(lmax+1)^2`` coefficients or as its samples on the grid of ``res_beta x res_alpha`` points

.. math:: x_{ij} = (\sin\beta_i \sin\alpha_j, \cos\beta_i, \sin\beta_i \cos\alpha_j), \quad
          \beta_i = \pi (i + 1/2) / N, \quad \alpha_j = 2\pi j / M

(``N = res_beta``, ``M = res_alpha``, pole on ``y``). :class:`ToS2Grid` evaluates, :class:`FromS2Grid`
integrates against the harmonics with the Driscoll-Healy/Kostelec-Rockmore quadrature in ``beta``
(exact for ``lmax < N / 2``) and the discrete Fourier transform in ``alpha`` (exact for
``M >= 2 lmax + 1``). Under those two conditions ``FromS2Grid(ToS2Grid(x)) == x`` to float rounding.

Rotations. The grid transforms commute exactly with rotations about ``y`` by multiples of ``2 pi /
M`` (they shift the ``alpha`` columns); for band-limited signals they are exactly equivariant to
every rotation in the sense that ``FromS2Grid`` of the samples of ``f o R^-1`` is ``D(R) F``.

Computation. ``shb[m, b, i]`` vanishes unless ``i`` is of order ``m``, so the modules contract over
the ``lmax + 1`` degrees of each order only (e3nn contracts over all ``(lmax + 1)^2``), then multiply
by ``sha`` as a real matrix where e3nn uses the FFT (:func:`rfft`/:func:`irfft`): the same numbers to
rounding, two GEMMs, and only real operators for ``torch.compile``/``torch.export``.

Same names, arguments, buffers (``alphas``, ``betas``, ``sha``, ``shb``) and numbers as
``e3nn.o3``; the constants are computed in float64 and cast once, so float64 buffers are
float64-accurate whatever torch's default dtype. Build a module with ``dtype=torch.float64`` for
float64 work: ``.double()`` on a float32 module casts constants already rounded to float32.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple, Union

import torch

from equiscale.errors import InvalidArgumentError
from equiscale.o3._angular import Legendre, spherical_harmonics_alpha
from equiscale.o3._rotation import angles_to_xyz

__all__ = ["s2_grid", "spherical_harmonics_s2_grid", "rfft", "irfft", "ToS2Grid", "FromS2Grid"]

_NORMALIZATIONS = ("norm", "component", "integral")
Resolution = Union[int, Tuple[Optional[int], Optional[int]], None]


def _dtype(dtype: Optional[torch.dtype]) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _quadrature_weights(b: int, dtype: Optional[torch.dtype] = None,
                        device: Optional[torch.device] = None) -> torch.Tensor:
    r"""Quadrature weights in ``beta`` of the ``2b``-point grid (Kostelec & Rockmore), shape ``(2b,)``.

    ``w_j = (2/b) sin(pi (2j+1) / 4b) sum_{k<b} sin((2j+1)(2k+1) pi / 4b) / (2k+1) / (2 (2b)^2)``,
    computed in float64 (e3nn computes it in the default dtype).
    """
    j = torch.arange(2 * b, dtype=torch.float64)[:, None]
    k = torch.arange(b, dtype=torch.float64)[None, :]
    s = (torch.sin((2 * j + 1) * (2 * k + 1) * math.pi / (4 * b)) / (2 * k + 1)).sum(1)
    w = (2.0 / b) * torch.sin(math.pi * (2 * j[:, 0] + 1) / (4 * b)) * s
    return (w / (2.0 * (2 * b) ** 2)).to(dtype=_dtype(dtype), device=device)


def s2_grid(res_beta: int, res_alpha: int, dtype: Optional[torch.dtype] = None,
            device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The grid on the sphere: ``beta_i = pi (i + 1/2) / res_beta``, ``alpha_j = 2 pi j / res_alpha``.

    Args:
        res_beta: number ``N`` of ``beta`` values.
        res_alpha: number ``M`` of ``alpha`` values.
        dtype: of the result (torch's default dtype if None).
        device: of the result.

    Returns:
        ``(betas, alphas)`` of shapes ``(res_beta,)`` and ``(res_alpha,)``.
    """
    _check_int("res_beta", res_beta, 1)
    _check_int("res_alpha", res_alpha, 1)
    betas = (torch.arange(res_beta, dtype=torch.float64) + 0.5) / res_beta * math.pi
    alphas = torch.arange(res_alpha, dtype=torch.float64) / res_alpha * 2 * math.pi
    dtype = _dtype(dtype)
    return betas.to(dtype=dtype, device=device), alphas.to(dtype=dtype, device=device)


def spherical_harmonics_s2_grid(lmax: int, res_beta: int, res_alpha: int, dtype: Optional[torch.dtype] = None,
                                device: Optional[torch.device] = None):
    r"""The two factors of the harmonics on the grid: ``Y^l_m(x_ij) = shb[i, (l, m)] sha[j, m]``.

    Args:
        lmax: largest degree.
        res_beta: number of ``beta`` values.
        res_alpha: number of ``alpha`` values.
        dtype: of the result (torch's default dtype if None).
        device: of the result.

    Returns:
        ``(betas, alphas, shb, sha)`` of shapes ``(res_beta,)``, ``(res_alpha,)``,
        ``(res_beta, (lmax+1)^2)`` (the Legendre part) and ``(res_alpha, 2 lmax + 1)`` (the
        ``alpha`` part, ``m = -lmax..lmax``).
    """
    _check_int("lmax", lmax, 0)
    betas, alphas = s2_grid(res_beta, res_alpha, dtype=torch.float64)
    shb = Legendre(list(range(lmax + 1)))(betas.cos(), betas.sin().abs())
    sha = spherical_harmonics_alpha(lmax, alphas)
    dtype = _dtype(dtype)
    return tuple(t.to(dtype=dtype, device=device) for t in (betas, alphas, shb, sha))


def _complete_lmax_res(lmax: Optional[int], res_beta: Optional[int],
                       res_alpha: Optional[int]) -> Tuple[int, int, int]:
    """Fill in the missing ones of ``lmax, res_beta, res_alpha`` as e3nn does, and check them."""
    if lmax is not None:
        _check_int("lmax", lmax, 0)
    if res_beta is None:
        if lmax is not None:
            res_beta = 2 * (lmax + 1)  # the smallest that goes to the sphere and back
        elif res_alpha is not None:
            res_beta = 2 * ((_check_int("res_alpha", res_alpha, 1) + 1) // 2)
        else:
            raise InvalidArgumentError("give lmax or a resolution: lmax and res are all None")
    _check_int("res_beta", res_beta, 2)
    if res_alpha is None:
        res_alpha = max(2 * lmax + 1, res_beta - 1) if lmax is not None else res_beta - 1
    _check_int("res_alpha", res_alpha, 1)
    if lmax is None:
        lmax = min(res_beta // 2 - 1, (res_alpha - 1) // 2)
    if res_beta % 2:
        raise InvalidArgumentError(f"res_beta must be even (the beta quadrature has 2b points), got {res_beta}")
    if lmax + 1 > res_beta // 2:
        raise InvalidArgumentError(f"lmax={lmax} is too large for res_beta={res_beta}: "
                                   f"need res_beta >= 2 (lmax + 1) = {2 * (lmax + 1)}")
    return lmax, res_beta, res_alpha


def _resolution(lmax: Optional[int], res: Resolution) -> Tuple[int, int, int]:
    if res is None or isinstance(res, int):
        return _complete_lmax_res(lmax, res, None)
    res = tuple(res)
    if len(res) != 2:
        raise InvalidArgumentError(f"res must be an int or a pair (res_beta, res_alpha), got {res!r}")
    return _complete_lmax_res(lmax, *res)


def rfft(x: torch.Tensor, l: int) -> torch.Tensor:
    r"""Real Fourier transform in ``alpha``: ``x @ sha`` for samples at ``alpha_j = 2 pi j / res``.

    Args:
        x: tensor of shape ``(..., res)``, samples on the ``alpha`` grid.
        l: largest frequency kept (``l <= res // 2``).

    Returns:
        Tensor of shape ``(..., 2l+1)``: ``sum_j x_j S_m(alpha_j)`` for ``m = -l..l``.
    """
    _check_int("l", l, 0)
    *size, res = x.shape
    if l > res // 2:
        raise InvalidArgumentError(f"rfft: l={l} needs at least {2 * l + 1} samples, got {res}")
    f = torch.fft.rfft(x.reshape(-1, res), dim=1)
    out = torch.cat([f[:, 1:l + 1].imag.flip(1) * -math.sqrt(2), f[:, :1].real,
                     f[:, 1:l + 1].real * math.sqrt(2)], dim=1)
    return out.reshape(*size, 2 * l + 1)


def irfft(x: torch.Tensor, res: int) -> torch.Tensor:
    r"""Inverse of :func:`rfft`: ``sha @ x``, the Fourier series sampled at ``alpha_j = 2 pi j / res``.

    Args:
        x: tensor of shape ``(..., 2l+1)``, coefficients of ``S_m``, ``m = -l..l``.
        res: number of samples, odd and at least ``2l+1``.

    Returns:
        Tensor of shape ``(..., res)``.
    """
    _check_int("res", res, 1)
    *size, sm = x.shape
    if res % 2 == 0 or sm % 2 == 0 or res < sm:
        raise InvalidArgumentError(f"irfft: res must be odd and >= the input size {sm} (odd), got res={res}")
    l = sm // 2
    x = x.reshape(-1, sm)
    real = torch.cat([x[:, l:l + 1], x[:, l + 1:] / math.sqrt(2)], dim=1)
    imag = torch.cat([torch.zeros_like(x[:, :1]), x[:, :l].flip(1) / -math.sqrt(2)], dim=1)
    out = torch.fft.irfft(torch.complex(real, imag), n=res, dim=1) * res
    return out.reshape(*size, res)


def _normalization(normalization: Any) -> Any:
    if not (isinstance(normalization, torch.Tensor) or normalization in _NORMALIZATIONS):
        raise InvalidArgumentError(f"normalization needs to be 'norm', 'component' or 'integral', "
                                   f"got {normalization!r}")
    return normalization


def _spread(shb: torch.Tensor, n: torch.Tensor, lmax: int) -> torch.Tensor:
    """``out[lmax + m, b, i] = shb[b, i] n[l]`` for ``i = (l, m)``, zero elsewhere: ``(2lmax+1, B, (lmax+1)^2)``."""
    if n.shape != (lmax + 1,):
        raise InvalidArgumentError(f"a normalization tensor must have shape ({lmax + 1},) (one factor per degree), "
                                   f"got {tuple(n.shape)}")
    ls = torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)])
    ms = torch.tensor([m for l in range(lmax + 1) for m in range(-l, l + 1)])
    out = shb.new_zeros(2 * lmax + 1, shb.shape[0], shb.shape[1])
    out[lmax + ms, :, torch.arange(len(ls))] = (shb * n[ls]).t()
    return out


class _S2GridBase(torch.nn.Module):
    lmax: int
    res_beta: int
    res_alpha: int

    def _register(self, lmax: int, res_beta: int, res_alpha: int, betas, alphas, sha, shb, dtype, device) -> None:
        self.lmax, self.res_beta, self.res_alpha = lmax, res_beta, res_alpha
        dtype = _dtype(dtype)
        for name, value in (("alphas", alphas), ("betas", betas), ("sha", sha), ("shb", shb)):
            self.register_buffer(name, value.to(dtype=dtype, device=device))
        # shb[m, b, i] vanishes unless i = (l, m): the products run over slots k = l - |m| only
        # (lmax + 1 of them instead of (lmax + 1)^2). _slot[m, k] is the column i of (|m| + k, m),
        # or 0 past lmax (shb is zero there for m != 0); _row[i] is the position of i in (m, k).
        slot = torch.zeros(2 * lmax + 1, lmax + 1, dtype=torch.long)
        row = torch.zeros((lmax + 1) ** 2, dtype=torch.long)
        for m in range(-lmax, lmax + 1):
            for l in range(abs(m), lmax + 1):
                slot[m + lmax, l - abs(m)] = l * l + l + m
                row[l * l + l + m] = (m + lmax) * (lmax + 1) + l - abs(m)
        self.register_buffer("_slot", slot.to(device), persistent=False)
        self.register_buffer("_row", row.to(device), persistent=False)

    def _compact(self) -> torch.Tensor:
        """``shb`` on its nonzero slots: ``(2lmax+1, res_beta, lmax+1)``, gathered from the buffer at
        each call (a loaded state dict is used as is; it is small)."""
        index = self._slot[:, None, :].expand(self.shb.shape[0], self.shb.shape[1], self._slot.shape[1])
        return torch.gather(self.shb, 2, index)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(lmax={self.lmax} res={self.res_beta}x{self.res_alpha} (beta x alpha))"

    @property
    def grid(self) -> torch.Tensor:
        """Points of the grid, shape ``(res_beta, res_alpha, 3)``."""
        beta, alpha = torch.meshgrid(self.betas, self.alphas, indexing="ij")
        return angles_to_xyz(alpha, beta)


class ToS2Grid(_S2GridBase):
    r"""Evaluate a spherical tensor on the grid: ``(..., (lmax+1)^2) -> (..., res_beta, res_alpha)``.

    Args:
        lmax: largest degree (derived from ``res`` if None).
        res: ``res_beta`` or ``(res_beta, res_alpha)`` (``res_beta`` even, ``>= 2 (lmax + 1)``;
            defaults as e3nn: ``res_beta = 2 (lmax + 1)``, ``res_alpha = max(2 lmax + 1, res_beta - 1)``).
        normalization: ``'component'`` (each degree contributes the same variance on the sphere when
            the components have unit variance), ``'norm'`` (the same when each degree has unit norm),
            ``'integral'`` (plain harmonics, ``int Y^2 = 1``), or a tensor ``(lmax+1,)`` of factors.
        dtype: of the buffers (torch's default dtype if None).
        device: of the buffers.

    A rotation ``R`` acts on the input by ``D(R)`` (``Irreps.spherical_harmonics(lmax).D_from_matrix``)
    and on the output as ``f -> f o R^-1``; the output is exact at the grid points, so only rotations
    about ``y`` by multiples of ``2 pi / res_alpha`` map the grid onto itself. Inverse of
    :class:`FromS2Grid` (see the module docstring for when exactly).
    """

    def __init__(self, lmax: Optional[int] = None, res: Resolution = None, normalization: Any = "component",
                 dtype: Optional[torch.dtype] = None, device: Optional[torch.device] = None) -> None:
        super().__init__()
        normalization = _normalization(normalization)
        lmax, res_beta, res_alpha = _resolution(lmax, res)
        betas, alphas, shb, sha = spherical_harmonics_s2_grid(lmax, res_beta, res_alpha, dtype=torch.float64)
        degrees = torch.arange(lmax + 1, dtype=torch.float64)
        if isinstance(normalization, torch.Tensor):
            n = normalization.detach().to(dtype=torch.float64, device="cpu")
        elif normalization == "component":
            n = math.sqrt(4 * math.pi) / (2 * degrees + 1).sqrt() / math.sqrt(lmax + 1)
        elif normalization == "norm":
            n = torch.full_like(degrees, math.sqrt(4 * math.pi) / math.sqrt(lmax + 1))
        else:
            n = torch.ones_like(degrees)
        self._register(lmax, res_beta, res_alpha, betas, alphas, sha, _spread(shb, n, lmax), dtype, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate.

        Args:
            x: tensor of shape ``(..., (lmax+1)^2)``.

        Returns:
            Tensor of shape ``(..., res_beta, res_alpha)``.
        """
        if x.shape[-1] != self.shb.shape[-1]:
            raise InvalidArgumentError(f"ToS2Grid(lmax={self.lmax}) expects inputs (..., {self.shb.shape[-1]}), "
                                       f"got {tuple(x.shape)}")
        size = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        (z, _), (sm, sk) = x.shape, self._slot.shape
        x = x.index_select(1, self._slot.flatten()).view(z, sm, sk).transpose(0, 1)  # [m, z, k]
        x = torch.bmm(x, self._compact().transpose(1, 2))  # [m, z, b]
        x = x.reshape(sm, -1).t() @ self.sha.t()  # [(z, b), a]
        return x.reshape(*size, self.res_beta, self.res_alpha)


class FromS2Grid(_S2GridBase):
    r"""Project a signal on the grid onto the harmonics: ``(..., res_beta, res_alpha) -> (..., (lmax+1)^2)``.

    Args:
        res: ``res_beta`` or ``(res_beta, res_alpha)``, as :class:`ToS2Grid`.
        lmax: largest degree of the output (derived from ``res`` if None).
        normalization: ``'component'``, ``'norm'``, ``'integral'`` (``4 pi`` times the mean of
            ``f Y`` over the sphere, i.e. ``int f Y``) or a tensor ``(lmax+1,)``; the first two make
            this the inverse of ``ToS2Grid(lmax_in, res, normalization)``.
        lmax_in: the ``lmax`` of the :class:`ToS2Grid` this inverts (default ``lmax``).
        dtype: of the buffers (torch's default dtype if None).
        device: of the buffers.

    Accuracy: exact (to float rounding) on samples of signals of degree ``<= lmax`` when
    ``res_alpha >= 2 lmax + 1``; higher degrees in the signal alias into the output. A rotation
    about ``y`` by ``2 pi k / res_alpha`` (shifting the columns by ``k``) acts on the output by its
    ``D`` exactly, for any signal.
    """

    def __init__(self, res: Resolution = None, lmax: Optional[int] = None, normalization: Any = "component",
                 lmax_in: Optional[int] = None, dtype: Optional[torch.dtype] = None,
                 device: Optional[torch.device] = None) -> None:
        super().__init__()
        normalization = _normalization(normalization)
        lmax, res_beta, res_alpha = _resolution(lmax, res)
        lmax_in = lmax if lmax_in is None else _check_int("lmax_in", lmax_in, 0)
        betas, alphas, shb, sha = spherical_harmonics_s2_grid(lmax, res_beta, res_alpha, dtype=torch.float64)
        degrees = torch.arange(lmax + 1, dtype=torch.float64)
        if isinstance(normalization, torch.Tensor):
            n = normalization.detach().to(dtype=torch.float64, device="cpu")
        elif normalization == "component":
            n = math.sqrt(4 * math.pi) * (2 * degrees + 1).sqrt() * math.sqrt(lmax_in + 1)
        elif normalization == "norm":
            n = torch.full_like(degrees, math.sqrt(4 * math.pi) * math.sqrt(lmax_in + 1))
        else:
            n = torch.full_like(degrees, 4 * math.pi)
        qw = _quadrature_weights(res_beta // 2, dtype=torch.float64) * res_beta ** 2 / res_alpha
        shb = _spread(shb * qw[:, None], n, lmax)
        self._register(lmax, res_beta, res_alpha, betas, alphas, sha, shb, dtype, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate.

        Args:
            x: tensor of shape ``(..., res_beta, res_alpha)``.

        Returns:
            Tensor of shape ``(..., (lmax+1)^2)``.
        """
        if x.dim() < 2 or tuple(x.shape[-2:]) != (self.res_beta, self.res_alpha):
            raise InvalidArgumentError(f"FromS2Grid expects inputs (..., {self.res_beta}, {self.res_alpha}), "
                                       f"got {tuple(x.shape)}")
        size = x.shape[:-2]
        x = x.reshape(-1, self.res_alpha)
        sm = self.sha.shape[1]
        x = (self.sha.t() @ x.t()).view(sm, -1, self.res_beta)  # [m, z, b]
        x = torch.bmm(x, self._compact())  # [m, z, k]
        x = x.transpose(0, 1).reshape(x.shape[1], -1).index_select(1, self._row)
        return x.reshape(*size, x.shape[1])
