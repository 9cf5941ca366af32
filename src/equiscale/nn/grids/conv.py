"""Group-equivariant convolutions on 2D grids: :class:`LiftingConv2d` and :class:`GroupConv2d`.

Features are ``(batch, channels, |G|, H, W)`` with the group axis ordered like
``group.elements()``. A group element ``a`` acts on them by the regular representation, moving the
grid and shifting the group axis: ``(a.F)[c, h](p) = F[c, a^-1 h](a^-1 p)``, which is
``equiscale.testing.GridField(group.regular_representation(), axis=-3)``.

Each layer keeps one learned kernel, expands it to all elements (see :mod:`.filters`) and runs a
single ``conv2d``. The expanded filter is rebuilt on every forward that needs weight gradients
(once per weight update in training) and cached otherwise (inference, ``torch.no_grad()``); the
cache is keyed on the parameters' version counters, so any in-place update invalidates it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equiscale.kernels import kernel_basis
from equiscale.nn._buffers import set_optional_buffer
from equiscale.nn.grids import filters
from equiscale.nn.grids._filter_cache import FilterCache
from equiscale.nn.grids._geometry import (as_pair, check_field, check_planar_group, is_exact_on_grid, needs_square,
                                          resolve_same_padding)

__all__ = ["LiftingConv2d", "GroupConv2d"]

_PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


class _GroupConvBase(nn.Module):
    """Validation, parameters, filter cache and the single ``conv2d`` shared by both layers."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], group: Any,
                 lifting: bool, stride: int | tuple[int, int], padding: int | tuple[int, int] | str,
                 padding_mode: str, bias: bool, in_rep: Any, frequency_cutoff: float, sigma: float,
                 device: Any, dtype: torch.dtype | None) -> None:
        super().__init__()
        name = type(self).__name__
        self.group = check_planar_group(group)
        for value, what in ((in_channels, "in_channels"), (out_channels, "out_channels")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")
        kh, kw = as_pair(kernel_size, f"{name}: kernel_size")
        if kh != kw or kh < 1:
            raise ValueError(f"{name}: kernel_size must be square and positive, got {kernel_size!r}")
        self.kernel_size = kh
        self.stride = as_pair(stride, f"{name}: stride")
        if min(self.stride) < 1:
            raise ValueError(f"{name}: stride must be >= 1, got {stride!r}")
        padding = resolve_same_padding(padding, kh, name)
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int, a pair or 'same', got {padding!r}")
        self.padding = as_pair(padding, f"{name}: padding")
        if needs_square(self.group) and (self.stride[0] != self.stride[1] or self.padding[0] != self.padding[1]):
            raise ValueError(f"{name}: stride {self.stride} and padding {self.padding} must be equal on both axes: "
                             f"the rotations of {self.group.name} swap them")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.in_channels, self.out_channels, self.lifting = in_channels, out_channels, lifting
        self.exact = is_exact_on_grid(self.group)
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        order, k = self.group.order, self.kernel_size

        signs = None  # the exact path multiplies by the input's character; the basis path builds it in
        if in_rep is not None:
            if not lifting:
                raise ValueError(f"{name}: in_rep applies to lifting convolutions only")
            if in_rep.group != self.group or in_rep.dim != 1:
                raise ValueError(f"{name}: in_rep must be a 1-d representation of {self.group.name}, got {in_rep!r}")
            signs = in_rep(self.group.elements())[:, 0, 0]
        self.in_rep = in_rep
        set_optional_buffer(self, "signs", None if signs is None else signs.to(**factory))

        group_axis = () if lifting else (order,)
        if self.exact:
            index = filters.lifting_index(self.group, k) if lifting else filters.group_index(self.group, k)
            self.register_buffer("index", index.to(device), persistent=False)
            self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *group_axis, k, k, **factory))
            self.num_basis = k * k
        else:
            # The regular-representation case of the steerable kernels: K(g x) = rho_reg(g) K(x) rho_in(g)^-1.
            regular = self.group.regular_representation()
            source = regular if not lifting else (in_rep or self.group.trivial_representation())
            basis = kernel_basis(self.group, source, regular, k, frequency_cutoff=frequency_cutoff, sigma=sigma,
                                 strict=False)
            self.register_buffer("basis", basis.on_grid(k).to(**factory), persistent=False)  # (B, |G|, 1 or |G|, k, k)
            self.num_basis = len(basis)
            self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.num_basis, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self._cache = FilterCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv2d``'s default scale: kernel entries and bias ~ U(+-1/sqrt(fan_in))."""
        order = 1 if self.lifting else self.group.order
        fan_in = self.in_channels * order * self.kernel_size**2
        bound = 1.0 / math.sqrt(fan_in)
        if self.exact:
            weight_bound = bound
        else:  # the coefficient scale giving the same expected output variance as the exact (pixel) kernels
            energy = float(self.basis.double().pow(2).sum()) / self.group.order  # per output channel and unit variance
            weight_bound = 1.0 / math.sqrt(energy * self.in_channels)
        with torch.no_grad():
            self.weight.uniform_(-weight_bound, weight_bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    # --- the expanded filter --------------------------------------------------------------------
    def expand(self) -> tuple[Tensor, Tensor | None]:
        """The filter for one ``conv2d``: ``(C_out |G|, C_in [|G|], k, k)`` and bias ``(C_out |G|)`` (always recomputed)."""
        order = self.group.order
        w = self.weight
        if self.exact:
            weight = filters.expand_gather(w.reshape(w.shape[0], w.shape[1], -1), self.index, self.kernel_size, self.signs)
        else:
            c_out, c_in, _ = w.shape
            weight = torch.einsum("oib,bgh...->ogih...", w, self.basis).reshape(c_out * order, -1, *self.basis.shape[-2:])
        bias = None if self.bias is None else self.bias.repeat_interleave(order)
        return weight, bias

    def filter(self) -> tuple[Tensor, Tensor | None]:
        """:meth:`expand`, served from the cache when no weight gradient is needed and the weights are unchanged."""
        return self._cache.get((self.weight, self.bias), (self.signs, getattr(self, "basis", None)), self.expand)

    # --- forward ----------------------------------------------------------------------------------
    def _conv(self, x: Tensor) -> Tensor:
        """``x`` ``(B, C_in [|G|], H, W)`` -> ``(B, C_out, |G|, H', W')``."""
        weight, bias = self.filter()
        padding = self.padding
        if self.padding_mode != "zeros" and any(padding):
            ph, pw = padding
            x = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
            padding = (0, 0)
        y = F.conv2d(x, weight, bias, self.stride, padding)
        return y.view(y.shape[0], self.out_channels, self.group.order, y.shape[-2], y.shape[-1])

    def _check(self, x: Tensor, dims: int, shape: str) -> None:
        name = type(self).__name__
        if x.dim() != dims:
            raise ValueError(f"{name}: input must be {shape}, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{name}: input has {x.shape[1]} channels, the layer expects {self.in_channels}")
        check_field(x, self.group, (self.kernel_size,) * 2, self.stride, self.padding, name)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, group={self.group.name}, "
                f"stride={self.stride}, padding={self.padding}, padding_mode={self.padding_mode!r}, "
                f"bias={self.bias is not None}, {'exact' if self.exact else f'basis of {self.num_basis}'}")
        return text + (f", in_rep={self.in_rep.name}" if self.in_rep is not None else "")


class LiftingConv2d(_GroupConvBase):
    """Lift a plain field to the group: ``(B, C_in, H, W)`` -> ``(B, C_out, |G|, H', W')``.

    ``out[b, o, g] = sum_i (chi(g) L_g K[o, i]) * x[b, i]`` (cross-correlation, as ``nn.Conv2d``),
    with ``(L_g K)(p) = K(g^-1 p)`` the kernel rotated (and reflected) by ``g``.

    Symmetry: rotating the input, ``x -> a.x`` with ``(a.x)(p) = chi(a) x(a^-1 p)``, moves the output by
    the regular representation, ``out[:, :, h](p) -> out[:, :, a^-1 h](a^-1 p)``. ``chi`` is
    ``in_rep`` (a 1-d representation, e.g. ``D(4).irrep(1, 0)`` for a pseudo-scalar that flips sign
    under reflections); the default ``None`` treats the input as scalars.

    Args:
        group: ``C(n)`` or ``D(n)``; exact on the grid for n in {1, 2, 4}, otherwise the kernel lives
            in a steerable basis (:func:`equiscale.kernels.kernel_basis` with ``frequency_cutoff``,
            ``sigma``) and rotations other than quarter turns are approximate.
        stride, padding: ints (or equal pairs); ``padding="same"`` for odd kernels. The field must be
            square when the group has quarter turns, and ``H + 2 padding - kernel_size`` divisible by
            the stride so that the output grid stays centred; otherwise ValueError.
        padding_mode: ``"zeros"``, ``"circular"`` (periodic fields), ``"reflect"`` or ``"replicate"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], group: Any,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 padding_mode: str = "zeros", bias: bool = True, in_rep: Any = None,
                 frequency_cutoff: float = 1.0, sigma: float = 0.6, device: Any = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, group, True, stride, padding, padding_mode, bias,
                         in_rep, frequency_cutoff, sigma, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, |G|, H', W')``."""
        self._check(x, 4, "(batch, channels, H, W)")
        return self._conv(x)


class GroupConv2d(_GroupConvBase):
    """Group convolution: ``(B, C_in, |G|, H, W)`` -> ``(B, C_out, |G|, H', W')``.

    ``out[b, o, g] = sum_{i, h} (L_g Psi[o, i, g^-1 h]) * x[b, i, h]`` with ``Psi`` the learned kernel
    ``(C_out, C_in, |G|, k, k)`` and ``(L_g K)(p) = K(g^-1 p)``.

    Symmetry: input and output both transform by the regular representation,
    ``F[:, :, h](p) -> F[:, :, a^-1 h](a^-1 p)`` (``GridField(group.regular_representation(), -3)``).
    Arguments as :class:`LiftingConv2d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], group: Any,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 padding_mode: str = "zeros", bias: bool = True, frequency_cutoff: float = 1.0,
                 sigma: float = 0.6, device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, group, False, stride, padding, padding_mode, bias,
                         None, frequency_cutoff, sigma, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, |G|, H, W)`` -> ``(B, C_out, |G|, H', W')``."""
        self._check(x, 5, "(batch, channels, |G|, H, W)")
        if x.shape[2] != self.group.order:
            raise ValueError(f"GroupConv2d: the group axis (dim 2) has size {x.shape[2]}, "
                             f"{self.group.name} has {self.group.order} elements")
        return self._conv(x.reshape(x.shape[0], -1, x.shape[-2], x.shape[-1]))
