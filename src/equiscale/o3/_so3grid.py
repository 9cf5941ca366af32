r"""Signals on the rotation group: between Wigner-D coefficients and samples on an Euler-angle grid.

A signal on SO(3) of degree ``<= lmax`` is ``f(g) = sum_l sqrt(2l+1) sum_{mn} F^l_{mn} D^l_{mn}(g)
/ sqrt(dim)`` with ``dim = sum_l (2l+1)^2`` coefficients, flattened ``l`` by ``l`` and each
``F^l`` row-major (e3nn 0.6's ``SO3Grid``). The grid is ``g = Y(alpha) X(beta) Y(gamma)`` with
``alpha, gamma`` on ``2 pi j / na`` and ``beta`` on ``pi (i + 1/2) / nb`` (``nb = 2 resolution``,
``na = round(2 aspect_ratio resolution)``); :meth:`SO3Grid.from_grid` integrates with the
Kostelec-Rockmore weights, exact for ``lmax < resolution`` with ``na >= 2 lmax + 1``: then
``from_grid(to_grid(F)) == F`` to float rounding.

Rotations. Left translation ``f -> f(R^-1 g)`` acts on each ``F^l`` as ``D^l(R) F^l``, right
translation ``f -> f(g R)`` as ``F^l D^l(R)^T``; both are exact on band-limited signals, and
translations by rotations about ``y`` by multiples of ``2 pi / na`` permute the grid exactly.
"""
from __future__ import annotations

from typing import Optional

import torch

from equiscale.errors import InvalidArgumentError
from equiscale.o3._s2grid import _check_int, _dtype, _quadrature_weights, s2_grid
from equiscale.o3._wigner import wigner_D

__all__ = ["SO3Grid", "flat_wigner"]


def flat_wigner(lmax: int, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``[sqrt(2l+1) D^l(alpha, beta, gamma).flatten() for l <= lmax]`` concatenated: ``(..., sum (2l+1)^2)``.

    Args:
        lmax: largest degree.
        alpha: Euler angle, shape broadcastable with ``beta`` and ``gamma``.
        beta: Euler angle.
        gamma: Euler angle.

    Returns:
        Tensor of shape ``(..., sum_{l <= lmax} (2l+1)^2)``.
    """
    return torch.cat([(2 * l + 1) ** 0.5 * wigner_D(l, alpha, beta, gamma).flatten(-2)
                      for l in range(lmax + 1)], dim=-1)


class SO3Grid(torch.nn.Module):
    r"""The grid on SO(3) and the transforms to it and back (e3nn's ``SO3Grid``, same buffers).

    Args:
        lmax: largest degree; the coefficients are ``sum_{l <= lmax} (2l+1)^2`` numbers.
        resolution: ``nb = 2 resolution`` values of ``beta``.
        normalization: only ``'component'`` (as e3nn).
        aspect_ratio: ``na = round(2 aspect_ratio resolution)`` values of ``alpha`` and ``gamma``.
        dtype: of the buffers (torch's default dtype if None; an extension: e3nn has no such argument).
        device: of the buffers.

    Buffers ``D (na, nb, na, dim)``, ``qw (nb,)``, ``alpha``, ``beta``, ``gamma``. The grid holds
    ``f(alpha_a, beta_b, gamma_c)`` at ``[..., a, b, c]``.
    """

    def __init__(self, lmax: int, resolution: int, *, normalization: str = "component", aspect_ratio: float = 2,
                 dtype: Optional[torch.dtype] = None, device: Optional[torch.device] = None) -> None:
        super().__init__()
        if normalization != "component":
            raise InvalidArgumentError(f"SO3Grid supports only normalization='component', got {normalization!r}")
        lmax = _check_int("lmax", lmax, 0)
        resolution = _check_int("resolution", resolution, 1)
        nb = 2 * resolution
        na = round(2 * aspect_ratio * resolution)
        if na < 1:
            raise InvalidArgumentError(f"aspect_ratio={aspect_ratio!r} leaves no alpha/gamma grid points")
        if lmax >= resolution:
            raise InvalidArgumentError(f"lmax={lmax} is too large for resolution={resolution}: "
                                       f"need resolution >= lmax + 1 = {lmax + 1}")
        b, a = s2_grid(nb, na, dtype=torch.float64)
        dtype = _dtype(dtype)
        D = flat_wigner(lmax, a[:, None, None], b[None, :, None], a[None, None, :])
        qw = _quadrature_weights(nb // 2, dtype=torch.float64) * nb ** 2 / na ** 2
        for name, value in (("D", D), ("qw", qw), ("alpha", a), ("beta", b), ("gamma", a)):
            self.register_buffer(name, value.to(dtype=dtype, device=device))
        self.lmax = lmax
        self.res_alpha, self.res_beta, self.res_gamma = na, nb, na

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(lmax={self.lmax} res={self.res_alpha}x{self.res_beta}x{self.res_gamma})"

    def to_grid(self, features: torch.Tensor) -> torch.Tensor:
        """Evaluate the signal on the grid.

        Args:
            features: tensor of shape ``(..., dim)``, ``dim = sum_l (2l+1)^2``.

        Returns:
            Tensor of shape ``(..., res_alpha, res_beta, res_gamma)``.
        """
        if features.shape[-1] != self.D.shape[-1]:
            raise InvalidArgumentError(f"SO3Grid(lmax={self.lmax}).to_grid expects (..., {self.D.shape[-1]}), "
                                       f"got {tuple(features.shape)}")
        dim = self.D.shape[-1]
        out = features.reshape(-1, dim) @ self.D.reshape(-1, dim).t()  # a GEMM, batch kept symbolic
        return out.reshape(*features.shape[:-1], *self.D.shape[:3]) / dim ** 0.5

    def from_grid(self, features: torch.Tensor) -> torch.Tensor:
        """Project samples on the grid onto the coefficients.

        Args:
            features: tensor of shape ``(..., res_alpha, res_beta, res_gamma)``.

        Returns:
            Tensor of shape ``(..., dim)``.
        """
        if features.dim() < 3 or tuple(features.shape[-3:]) != tuple(self.D.shape[:3]):
            raise InvalidArgumentError(f"SO3Grid.from_grid expects (..., {self.res_alpha}, {self.res_beta}, "
                                       f"{self.res_gamma}), got {tuple(features.shape)}")
        dim = self.D.shape[-1]
        weighted = (features * self.qw[:, None]).reshape(-1, self.D[..., 0].numel())
        out = weighted @ self.D.reshape(-1, dim)
        return out.reshape(*features.shape[:-3], dim) * dim ** 0.5
