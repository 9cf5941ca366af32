"""Steerable convolutions on 2D and 3D grids: :class:`SteerableConv2d`, :class:`SteerableConv3d`.

The filter between an input field of type ``rho_in`` and an output field of type ``rho_out`` is a
learned combination of the kernels of :func:`equiscale.kernels.kernel_basis`, sampled on the
``k x k (x k)`` grid, so it satisfies ``K(g x) = rho_out(g) K(x) rho_in(g)^-1`` and the layer maps
``(g.F)(p) = rho_in(g) F(g^-1 p)`` to ``rho_out(g) F'(g^-1 p)``: exactly for the elements that map
the grid onto itself (90-degree rotations, axis flips), up to the sampling of the rotated kernel
otherwise. The bias lives in the invariant subspace of each output field.

Weights: one coefficient per (output field, input field, basis kernel). Fields are grouped by
representation (equal matrices, :func:`~.field_type.same_representation`), the basis is built once per pair of distinct
representations, and the expansion is one ``einsum`` per pair; the filter is rebuilt once per
weight update and cached for inference (:class:`~._filter_cache.FilterCache`); the forward is one
``conv2d``/``conv3d``. :meth:`export` returns the equivalent plain ``nn.Conv2d``/``nn.Conv3d``.

The basis is sampled once, in the layer's dtype: a layer built in float32 and converted with
``.double()`` keeps float32 rounding in its kernels (equivariance ~1e-8); build it with
``dtype=torch.float64`` for errors at 1e-15.

Initialisation is computed from the basis: each output field's coefficients have the variance
that gives unit output variance for inputs with unit-variance, independent entries (times
``gain**2``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equiscale.groups import CyclicGroup, DihedralGroup
from equiscale.kernels import kernel_basis, space_dimension
from equiscale.nn._buffers import set_optional_buffer
from equiscale.nn.grids._filter_cache import FilterCache
from equiscale.nn.grids._geometry import resolve_same_padding
from equiscale.nn.grids.field_type import FieldType, as_field_type

__all__ = ["SteerableConv2d", "SteerableConv3d", "SteerableSequential"]

_PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


def _grid_exact(group: Any) -> bool:
    """True when every element maps the square grid onto itself (C(n), D(n) with n dividing 4)."""
    return isinstance(group, (CyclicGroup, DihedralGroup)) and 4 % group.n == 0


def _grid_symmetric_axes(group: Any) -> bool:
    """True when some element swaps grid axes, so every spatial side must be equal."""
    return not (isinstance(group, (CyclicGroup, DihedralGroup)) and group.n in (1, 2))


class _SteerableConv(nn.Module):
    """Everything but the spatial dimension, shared by the 2D and 3D layers."""

    dims: int = 2

    def __init__(self, in_type: FieldType, out_type: FieldType, kernel_size: int, stride: int = 1,
                 padding: int | str = 0, padding_mode: str = "zeros", bias: bool = True, *,
                 radii: Sequence[float] | None = None, sigma: float = 0.6,
                 frequency_cutoff: float = 2.0, max_frequency: int | None = None, method: str = "analytic",
                 gain: float = 1.0, device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_type = as_field_type(in_type, f"{name}: in_type")
        self.out_type = as_field_type(out_type, f"{name}: out_type")
        if in_type.group != out_type.group:
            raise ValueError(f"{name}: in_type is a field type of {in_type.group.name}, out_type of "
                             f"{out_type.group.name}; both must have the same group")
        self.group = in_type.group
        if space_dimension(self.group) != self.dims:
            raise ValueError(f"{name}: {self.group.name} acts on R^{space_dimension(self.group)}, this layer "
                             f"convolves {self.dims}D grids")
        for value, what in ((kernel_size, "kernel_size"), (stride, "stride")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")
        padding = resolve_same_padding(padding, kernel_size, name)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"{name}: padding must be a non-negative int or 'same', got {padding!r}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.kernel_size, self.stride, self.padding, self.padding_mode = kernel_size, stride, padding, padding_mode
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}

        in_reps, in_ids = in_type.type_ids()
        out_reps, out_ids = out_type.type_ids()
        self._in_counts = [in_ids.count(v) for v in range(len(in_reps))]
        self._out_counts = [out_ids.count(u) for u in range(len(out_reps))]
        self._in_dims = [rep.dim for rep in in_reps]
        self._out_dims = [rep.dim for rep in out_reps]
        self._pairs: list[tuple[int, int, int]] = []  # (u, v, number of basis kernels)
        decompositions: dict = {}
        self.starved_outputs: list[tuple[str, str, int]] = []  # (field, irrep, frequency it would need)
        if max_frequency is None and not _grid_exact(self.group):
            # Harmonics above the outer ring's radius alias on the pixel grid (a 5x5 kernel: J <= 2).
            max_frequency = int(math.floor(max(radii) if radii is not None else (kernel_size - 1) / 2))
        self.max_frequency = max_frequency
        for u, rep_out in enumerate(out_reps):
            reached: set[int] = set()
            starved: dict[int, tuple[str, int]] = {}
            for v, rep_in in enumerate(in_reps):
                basis = kernel_basis(self.group, rep_in, rep_out, kernel_size, radii=radii, sigma=sigma,
                                     frequency_cutoff=frequency_cutoff, max_frequency=max_frequency, method=method,
                                     strict=False, decompositions=decompositions)
                reached |= basis.reached_outputs
                for index, irrep_name, needed in basis.starved_outputs:
                    starved.setdefault(index, (irrep_name, needed))
                self._pairs.append((u, v, len(basis)))
                self.register_buffer(f"basis_{u}_{v}", basis.on_grid(kernel_size).to(**factory), persistent=False)
            if not reached:
                if starved:
                    irrep_name, needed = next(iter(starved.values()))
                    raise ValueError(
                        f"{name}: kernel_size {kernel_size} is too small for the requested frequencies: the output "
                        f"field {rep_out.name} receives no kernel from {in_type!r}; its component {irrep_name} needs "
                        f"angular frequency {needed}, above min(frequency_cutoff x radius, max_frequency) on every "
                        f"ring; use a larger kernel_size (or raise frequency_cutoff / max_frequency)")
                raise ValueError(f"{name}: no {self.group.name}-equivariant kernel maps {in_type!r} to the output "
                                 f"field {rep_out.name}: its channels would always be zero")
            # Components of a field that no kernel reaches (e.g. the highest frequencies of a regular field
            # under the frequency cap) stay zero before the bias: the field is band-limited.
            self.starved_outputs.extend((rep_out.name, irrep_name, needed) for index, (irrep_name, needed)
                                        in starved.items() if index not in reached)

        sizes = [self._out_counts[u] * self._in_counts[v] * n for u, v, n in self._pairs]
        self._segments = sizes
        self.weight = nn.Parameter(torch.empty(sum(sizes), **factory))
        # Channel permutations between the layer's type-sorted order and the field types' order.
        set_optional_buffer(self, "in_order", self._sorted_channels(in_type, in_ids))
        set_optional_buffer(self, "out_order", self._sorted_channels(out_type, out_ids))
        invariant = out_type.invariant_basis()
        if bias and invariant.shape[1] > 0:
            self.register_buffer("bias_basis", invariant.to(**factory), persistent=False)
            self.bias = nn.Parameter(torch.zeros(invariant.shape[1], **factory))
        else:
            self.bias_basis = None  # a plain attribute, see set_optional_buffer
            self.bias = None
        self.gain = gain
        self._cache = FilterCache()
        self.reset_parameters()

    @staticmethod
    def _sorted_channels(field_type: FieldType, ids: list[int]) -> Tensor | None:
        """Channel indices listing the fields grouped by representation (None if already grouped)."""
        order = sorted(range(len(ids)), key=lambda i: (ids[i], i))
        channels = torch.cat([torch.arange(field_type.slices[i].start, field_type.slices[i].stop) for i in order])
        return None if torch.equal(channels, torch.arange(field_type.size)) else channels

    def _weights(self) -> list[Tensor]:
        """The coefficient blocks ``(n_out, n_in, basis)`` of each pair of representations."""
        blocks = torch.split(self.weight, self._segments)
        return [w.view(self._out_counts[u], self._in_counts[v], n) for w, (u, v, n) in zip(blocks, self._pairs)]

    def reset_parameters(self) -> None:
        """Coefficients ~ N(0, s_u^2) with ``s_u`` computed for unit output variance; bias zero."""
        with torch.no_grad():
            per_out: dict[int, float] = {}
            for u, v, n in self._pairs:
                if n:
                    basis = getattr(self, f"basis_{u}_{v}")
                    # Expected squared output of one output channel, per unit coefficient variance.
                    energy = basis.double().pow(2).sum() / self._out_dims[u]
                    per_out[u] = per_out.get(u, 0.0) + float(energy) * self._in_counts[v]
            for w, (u, v, n) in zip(self._weights(), self._pairs):
                if n:
                    w.normal_(0.0, self.gain / math.sqrt(per_out[u]))
            if self.bias is not None:
                self.bias.zero_()

    # --- the filter -------------------------------------------------------------------------------
    def expand(self) -> tuple[Tensor, Tensor | None]:
        """The plain filter ``(out.size, in.size, k, ...)`` and bias ``(out.size,)`` (always recomputed)."""
        k = self.kernel_size
        spatial = (k,) * self.dims
        weights = self._weights()
        rows = []
        pair = 0
        for u in range(len(self._out_counts)):
            row = []
            for v in range(len(self._in_counts)):
                _, _, n = self._pairs[pair]
                w, basis = weights[pair], getattr(self, f"basis_{u}_{v}")
                n_out, n_in = self._out_counts[u] * self._out_dims[u], self._in_counts[v] * self._in_dims[v]
                if n:
                    block = torch.einsum("xyb,bpq...->xpyq...", w, basis).reshape(n_out, n_in, *spatial)
                else:
                    block = self.weight.new_zeros(n_out, n_in, *spatial)
                row.append(block)
                pair += 1
            rows.append(row[0] if len(row) == 1 else torch.cat(row, 1))
        weight = rows[0] if len(rows) == 1 else torch.cat(rows, 0)
        if self.out_order is not None:
            weight = weight.index_select(0, torch.argsort(self.out_order))
        if self.in_order is not None:
            weight = weight.index_select(1, torch.argsort(self.in_order))
        bias = None if self.bias is None else self.bias_basis @ self.bias
        return weight, bias

    def filter(self) -> tuple[Tensor, Tensor | None]:
        """:meth:`expand`, cached when no weight gradient is needed and nothing changed."""
        buffers = [getattr(self, f"basis_{u}_{v}") for u, v, _ in self._pairs]
        return self._cache.get((self.weight, self.bias), buffers, self.expand)

    # --- forward ----------------------------------------------------------------------------------
    def _check(self, x: Tensor) -> None:
        name = type(self).__name__
        if x.dim() != 2 + self.dims:
            raise ValueError(f"{name}: input must be (batch, {self.in_type.size} channels, "
                             f"{', '.join('DHW'[3 - self.dims:])}), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_type.size:
            raise ValueError(f"{name}: input has {x.shape[1]} channels, in_type {self.in_type!r} has "
                             f"{self.in_type.size}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: input must be floating point, got {x.dtype}")
        sizes = tuple(x.shape[2:])
        if _grid_symmetric_axes(self.group) and len(set(sizes)) != 1:
            raise ValueError(f"{name}: the grid is {'x'.join(map(str, sizes))}; the rotations of {self.group.name} "
                             f"need equal sides")
        for size in sizes:
            if size + 2 * self.padding < self.kernel_size:
                raise ValueError(f"{name}: the grid ({size}, padding {self.padding}) is smaller than the kernel "
                                 f"({self.kernel_size})")
            if (size + 2 * self.padding - self.kernel_size) % self.stride:
                raise ValueError(f"{name}: stride {self.stride} with kernel {self.kernel_size} and padding "
                                 f"{self.padding} on a side of {size} samples a grid that is not centred, which "
                                 f"breaks equivariance: size + 2*padding - kernel_size must be divisible by the stride")

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_type.size, *grid)`` -> ``(B, out_type.size, *grid')``."""
        self._check(x)
        weight, bias = self.filter()
        padding = self.padding
        if self.padding_mode != "zeros" and padding:
            x = F.pad(x, (padding,) * (2 * self.dims), mode=self.padding_mode)
            padding = 0
        conv = F.conv2d if self.dims == 2 else F.conv3d
        return conv(x, weight, bias, self.stride, padding)

    def export(self) -> nn.Module:
        """A plain ``nn.Conv2d``/``nn.Conv3d`` holding the expanded filter: same outputs, no equivariance bookkeeping."""
        weight, bias = self.filter()
        cls = nn.Conv2d if self.dims == 2 else nn.Conv3d
        conv = cls(self.in_type.size, self.out_type.size, self.kernel_size, stride=self.stride, padding=self.padding,
                   padding_mode=self.padding_mode, bias=bias is not None, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(weight)
            if bias is not None:
                conv.bias.copy_(bias)
        return conv

    def extra_repr(self) -> str:
        return (f"{self.in_type!r} -> {self.out_type!r}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, padding_mode={self.padding_mode!r}, bias={self.bias is not None}, "
                f"{self.weight.numel()} coefficients")


class SteerableConv2d(_SteerableConv):
    """Steerable convolution of 2D fields: ``(B, in_type.size, H, W)`` -> ``(B, out_type.size, H', W')``.

    ``in_type``, ``out_type``: :class:`FieldType` of ``C(n)``, ``D(n)``, ``SO2()`` or ``O2()``. Grid
    convention of :mod:`equiscale.testing`: x along W, y along H, pixel centres symmetric about the
    centre. Other arguments as ``nn.Conv2d`` (square kernels, equal stride and padding on both
    axes; ``padding="same"`` for odd kernels); ``radii`` (default ``0, 1, ..., (k - 1) / 2``),
    ``sigma``, ``frequency_cutoff`` (harmonics ``J <= frequency_cutoff * r``), ``max_frequency``
    (default: the largest radius, e.g. 2 for k = 5, since higher harmonics alias on the grid and
    break rotations other than quarter turns; no cap for C(4), D(4) and their subgroups, whose
    elements are all grid symmetries) and ``method`` go to :func:`~equiscale.kernels.kernel_basis`; ``gain`` scales the initial
    output standard deviation.
    """

    dims = 2


class SteerableConv3d(_SteerableConv):
    """Steerable convolution of 3D fields: ``(B, in_type.size, D, H, W)`` -> ``(B, out_type.size, D', H', W')``.

    ``in_type``, ``out_type``: :class:`FieldType` of ``SO3()`` or ``O3()``; the array axes (D, H, W)
    sample (z, y, x). Arguments as :class:`SteerableConv2d`.
    """

    dims = 3


def _field_types(layer: nn.Module) -> tuple[FieldType | None, FieldType | None]:
    """A layer's (input, output) field types: ``in_type``/``out_type``, or ``field_type`` for both."""
    same = getattr(layer, "field_type", None)
    return getattr(layer, "in_type", same), getattr(layer, "out_type", same)


class SteerableSequential(nn.Sequential):
    """``nn.Sequential`` that checks, when built, that each layer's output field type is the next one's input.

    Layers declare their types as ``in_type``/``out_type`` (convolutions) or ``field_type`` (layers
    that keep the type, such as nonlinearities and norms); layers with neither are not checked.
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        previous: tuple[int, FieldType] | None = None
        for index, layer in enumerate(layers):
            in_type, out_type = _field_types(layer)
            if previous is not None and in_type is not None and in_type != previous[1]:
                raise ValueError(f"SteerableSequential: layer {index} expects {in_type!r}, but layer {previous[0]} "
                                 f"gives {previous[1]!r}")
            if out_type is not None:
                previous = (index, out_type)
