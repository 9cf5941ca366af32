"""Spectral convolutions on periodic 2D grids: the Fourier layers of :class:`~.fno.FNO` and :class:`~.fno.GFNO`.

Both layers are circular convolutions with a band-limited kernel, applied as a product in Fourier
space on the modes ``|ky| <= m, |kx| <= m`` (``m = modes``) of a real FFT and zero elsewhere. The
layer's output depends only on those modes, so a field sampled at 64x64 or 128x128 gives the same
function (resolution independence) provided ``m < N / 2`` (the Nyquist mode ``N / 2`` is never used).

* :class:`SpectralConv2d`: ``(B, C_in, H, W) -> (B, C_out, H, W)``, one complex weight per mode and
  channel pair (the plain FNO layer). Not rotation-equivariant.
* :class:`GroupSpectralConv2d`: ``(B, C_in, |G|, H, W) -> (B, C_out, |G|, H, W)`` for ``G`` one of
  C(1), C(2), C(4), D(1), D(2), D(4): a group convolution whose kernel lives in Fourier space. One
  learned kernel ``Psi[o, i, h](k)`` is expanded to ``K[o, g, i, h](k) = Psi[o, i, g^-1 h](g^-1 k)``;
  a rotation (or reflection) of the periodic grid permutes the Fourier modes the same way it permutes
  pixels, so the layer commutes exactly with ``F[:, :, h](p) -> F[:, :, a^-1 h](a^-1 p)``, the
  regular-representation action of :mod:`equiscale.nn.grids`. The mode set (a square centred on
  ``k = 0``) is closed under the group, and the learned kernel is made Hermitian
  (``Psi(-k) = conj Psi(k)``, a real kernel in space) before the expansion, so the real FFT's
  half-spectrum holds everything the inverse transform needs and the result is exact to rounding.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from equiscale.errors import InvalidArgumentError
from equiscale.nn.grids import filters
from equiscale.nn.grids._geometry import check_planar_group, is_exact_on_grid

__all__ = ["SpectralConv2d", "GroupSpectralConv2d", "check_modes"]


def check_modes(height: int, width: int, modes: int, layer: str) -> None:
    """InvalidArgumentError unless the ``H x W`` grid is even and holds the modes ``|k| <= modes`` below Nyquist."""
    for size, axis in ((height, "H"), (width, "W")):
        if size % 2:
            raise InvalidArgumentError(f"{layer}: the resolution must be even, got {axis}={size} (the spectral layers "
                                       f"keep the modes |k| <= {modes} symmetric about 0 and never the Nyquist mode)")
        if size < 2 * modes + 2:
            raise InvalidArgumentError(f"{layer}: {axis}={size} is too few points for {modes} Fourier modes: "
                                       f"need at least 2 * modes + 2 = {2 * modes + 2}")


def _check_int(value: Any, what: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{layer}: {what} must be a positive int, got {value!r}")
    return value


def _low_modes(x: Tensor, m: int) -> Tensor:
    """``rfft2`` of ``[..., H, W]`` restricted to ``ky = -m..m`` (rows, in that order), ``kx = 0..m``."""
    spectrum = torch.fft.rfft2(x)
    return torch.cat([spectrum[..., -m:, : m + 1], spectrum[..., : m + 1, : m + 1]], dim=-2)


def _from_low_modes(y: Tensor, m: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`_low_modes`: place ``(..., 2m+1, m+1)`` modes in an empty half-spectrum, ``irfft2``."""
    columns = width // 2 + 1
    y = torch.nn.functional.pad(torch.view_as_real(y), (0, 0, 0, columns - (m + 1)))
    gap = y.new_zeros(*y.shape[:-3], height - (2 * m + 1), columns, 2)
    full = torch.cat([y[..., m:, :, :], gap, y[..., :m, :, :]], dim=-3)
    return torch.fft.irfft2(torch.view_as_complex(full), s=(height, width))


def _mix(x: Tensor, weight: Tensor) -> Tensor:
    """``out[b, o, y, x] = sum_i x[b, i, y, x] weight[i, o, y, x]`` as one batched matmul over the modes."""
    b, c_in, ky, kx = x.shape
    xs = x.permute(2, 3, 0, 1).reshape(ky * kx, b, c_in)
    ws = weight.permute(2, 3, 0, 1).reshape(ky * kx, c_in, -1)
    return torch.bmm(xs, ws).reshape(ky, kx, b, -1).permute(2, 3, 0, 1)


class SpectralConv2d(nn.Module):
    """Plain Fourier layer: ``(B, C_in, H, W) -> (B, C_out, H, W)``, a circular convolution whose kernel
    has the modes ``|ky|, |kx| <= modes`` (a learned complex weight per mode and channel pair).

    Args:
        in_channels, out_channels: channel counts.
        modes: highest kept frequency ``m`` on each axis; fields need an even ``N >= 2m + 2``.

    Not equivariant under rotations: ``W(k)`` for ``k`` and its rotation are independent.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int, device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_channels = _check_int(in_channels, "in_channels", name)
        self.out_channels = _check_int(out_channels, "out_channels", name)
        self.modes = _check_int(modes, "modes", name)
        scale = 1.0 / (in_channels * out_channels) ** 0.5
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        self.weight = nn.Parameter(scale * torch.rand(in_channels, out_channels, 2 * modes + 1, modes + 1, 2, **factory))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InvalidArgumentError(f"{type(self).__name__}: input must be (batch, {self.in_channels}, H, W), "
                                       f"got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        check_modes(h, w, self.modes, type(self).__name__)
        y = _mix(_low_modes(x, self.modes), torch.view_as_complex(self.weight))
        return _from_low_modes(y, self.modes, h, w)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, modes={self.modes}"


class GroupSpectralConv2d(nn.Module):
    """Group-equivariant Fourier layer: ``(B, C_in, |G|, H, W) -> (B, C_out, |G|, H, W)``.

    ``out[o, g] = sum_{i, h} K[o, g, i, h] * x[i, h]`` (circular convolution) with the kernel given in
    Fourier space, ``hat K[o, g, i, h](k) = hat Psi[o, i, g^-1 h](g^-1 k)`` on ``|ky|, |kx| <= modes``.

    Symmetry: input and output transform by the regular representation,
    ``F[:, :, h](p) -> F[:, :, a^-1 h](a^-1 p)``, exactly for every element of ``group`` (C(n)/D(n) with
    n in {1, 2, 4}: the elements that map the grid onto itself).

    Args:
        in_channels, out_channels: regular fields (``channels * |G|`` numbers per pixel).
        modes: highest kept frequency ``m``; fields need an even ``N >= 2m + 2``, square for C(4)/D(4).
        group: ``C(n)`` or ``D(n)`` from :mod:`equiscale.groups`.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int, group: Any, device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.group = check_planar_group(group)
        if not is_exact_on_grid(self.group):
            raise InvalidArgumentError(f"{name}: {self.group.name} has rotations that do not map the grid onto itself; "
                                       f"the spectral layers support C(n)/D(n) with n in (1, 2, 4)")
        self.in_channels = _check_int(in_channels, "in_channels", name)
        self.out_channels = _check_int(out_channels, "out_channels", name)
        self.modes = m = _check_int(modes, "modes", name)
        order, size = self.group.order, 2 * m + 1
        # the expansion gathers the columns kx >= 0 of the full centred (2m+1)^2 mode square
        index = filters.group_index(self.group, size).reshape(order, order, size, size)[..., m:]
        self.register_buffer("index", index.reshape(order, -1).to(device), persistent=False)
        scale = 1.0 / (in_channels * out_channels * order) ** 0.5
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        self.weight = nn.Parameter(scale * torch.rand(out_channels, in_channels, order, size, m + 1, 2, **factory))

    def hermitian_kernel(self) -> Tensor:
        """The learned kernel on the full mode square, ``(C_out, C_in, |G|, 2m+1, 2m+1)`` complex,
        indexed ``[ky + m, kx + m]`` and Hermitian: ``Psi(-k) = conj Psi(k)``."""
        half = torch.view_as_complex(self.weight)  # [ky + m, kx] for kx = 0..m
        column = half[..., 0]
        column = (column + column.flip(-1).conj()) / 2  # the kx = 0 line pairs ky with -ky
        right = torch.cat([column[..., None], half[..., 1:]], dim=-1)
        left = right.flip(-2)[..., 1:].flip(-1).conj()  # kx = -m..-1: conj of (-ky, -kx)
        return torch.cat([left, right], dim=-1)

    def expand(self) -> Tensor:
        """The multiplier of one mode mixing: ``(C_in |G|, C_out |G|, 2m+1, m+1)`` complex (``kx >= 0``)."""
        full = self.hermitian_kernel()
        c_out, c_in, order = full.shape[:3]
        m = self.modes
        expanded = full.reshape(c_out, c_in, -1)[:, :, self.index]  # (C_out, C_in, G_out, G_in (2m+1) (m+1))
        expanded = expanded.reshape(c_out, c_in, order, order, 2 * m + 1, m + 1)
        return expanded.permute(1, 3, 0, 2, 4, 5).reshape(c_in * order, c_out * order, 2 * m + 1, m + 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, |G|, H, W)`` -> ``(B, C_out, |G|, H, W)``."""
        name, order = type(self).__name__, self.group.order
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] != order:
            raise InvalidArgumentError(f"{name}: input must be (batch, {self.in_channels}, {order}, H, W), "
                                       f"got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if self.group.n == 4 and h != w:
            raise InvalidArgumentError(f"{name}: the field is {h}x{w}, not square: the rotations of "
                                       f"{self.group.name} need H == W")
        check_modes(h, w, self.modes, name)
        y = _mix(_low_modes(x.flatten(1, 2), self.modes), self.expand())
        y = _from_low_modes(y, self.modes, h, w)
        return y.view(x.shape[0], self.out_channels, order, h, w)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, modes={self.modes}, group={self.group.name}"

