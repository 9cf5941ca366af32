"""Radial bases: expand an interatomic distance ``r`` into ``num_basis`` smooth functions.

Both bases map ``r`` of shape ``(...,)`` to ``(..., num_basis)`` and are meant to be multiplied by a
smooth cutoff (see :mod:`equiscale.nn.points.cutoff`) before entering a radial network.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BesselBasis", "GaussianBasis"]


def _check_r(r: torch.Tensor) -> None:
    if not isinstance(r, torch.Tensor) or not r.is_floating_point():
        raise ValueError(f"r must be a floating-point tensor of distances, shape (...,), got {type(r).__name__}")


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _check_count(num_basis: int) -> int:
    if not isinstance(num_basis, int) or num_basis < 1:
        raise ValueError(f"num_basis must be a positive int, got {num_basis!r}")
    return num_basis


class BesselBasis(nn.Module):
    r"""Zeroth-order spherical Bessel functions, as in DimeNet and NequIP.

    .. math:: b_n(r) = \frac{2}{r_c} \frac{\sin(\omega_n r / r_c)}{r}, \qquad \omega_n = n\pi \ (n = 1..N)

    at initialisation; the frequencies :math:`\omega_n` are trainable when ``trainable=True``. The
    value at ``r = 0`` is the finite limit :math:`2\omega_n / r_c^2` (computed with ``sinc``, so
    self-edges give no NaN).

    Args:
        num_basis: number of functions N.
        cutoff: the cutoff radius :math:`r_c`.
        trainable: learn the frequencies.

    Shapes: ``r`` ``(...,)`` -> ``(..., num_basis)``.
    """

    def __init__(self, num_basis: int = 8, cutoff: float = 5.0, trainable: bool = True) -> None:
        super().__init__()
        self.num_basis = _check_count(num_basis)
        self.cutoff = _check_positive("cutoff", cutoff)
        frequencies = math.pi * torch.arange(1, num_basis + 1, dtype=torch.get_default_dtype())
        if trainable:
            self.frequencies = nn.Parameter(frequencies)
        else:
            self.register_buffer("frequencies", frequencies)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        w = self.frequencies.to(r.dtype)
        # sin(w r / rc) / r = (w / rc) sinc(w r / (pi rc)), finite at r = 0.
        return (2.0 / self.cutoff**2) * w * torch.sinc(r.unsqueeze(-1) * w / (math.pi * self.cutoff))

    def extra_repr(self) -> str:
        return f"num_basis={self.num_basis}, cutoff={self.cutoff}, trainable={isinstance(self.frequencies, nn.Parameter)}"


class GaussianBasis(nn.Module):
    r"""Gaussians of equal width centred on a regular grid, as in SchNet.

    .. math:: b_n(r) = \exp\left(-\frac{(r - \mu_n)^2}{2\sigma^2}\right), \qquad
              \mu_n = \text{start} + n\,\frac{r_c - \text{start}}{N - 1}

    Args:
        num_basis: number of Gaussians N.
        cutoff: the last centre :math:`r_c`.
        start: the first centre.
        width: :math:`\sigma`; defaults to the spacing between centres.
        trainable: learn the centres and the width.

    Shapes: ``r`` ``(...,)`` -> ``(..., num_basis)``.
    """

    def __init__(
        self, num_basis: int = 8, cutoff: float = 5.0, start: float = 0.0, width: float | None = None, trainable: bool = False
    ) -> None:
        super().__init__()
        self.num_basis = _check_count(num_basis)
        self.cutoff = _check_positive("cutoff", cutoff)
        if not start < self.cutoff:
            raise ValueError(f"start ({start}) must be smaller than cutoff ({cutoff})")
        centres = torch.linspace(float(start), self.cutoff, num_basis, dtype=torch.get_default_dtype())
        if width is None:
            width = (self.cutoff - start) / max(num_basis - 1, 1)
        width_t = torch.tensor(_check_positive("width", width), dtype=torch.get_default_dtype())
        if trainable:
            self.centres = nn.Parameter(centres)
            self.width = nn.Parameter(width_t)
        else:
            self.register_buffer("centres", centres)
            self.register_buffer("width", width_t)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        _check_r(r)
        z = (r.unsqueeze(-1) - self.centres.to(r.dtype)) / self.width.to(r.dtype)
        return torch.exp(-0.5 * z * z)

    def extra_repr(self) -> str:
        return f"num_basis={self.num_basis}, cutoff={self.cutoff}"
