"""Steerable models of the field demonstrations and their plain-CNN baselines.

2D velocity, one step ``u(t) -> u(t + dt)`` on a periodic square, ``(B, 2, H, W)`` with
``(u_x, u_y)`` on the channel axis (x along W, y along H):

* :class:`SteerableVelocityNet`: input and output one vector field (the frequency-1 irrep of
  ``C(8)`` or ``SO(2)``), hidden ``C(8)`` regular fields with a pointwise GELU, or ``SO(2)``
  fields of frequencies 0, 1, 2 with a gated nonlinearity. Equivariant under ``C(8)``/``SO(2)``:
  ``f(g.u) = g.f(u)`` with ``(g.u)(p) = R u(R^-1 p)``, exactly for quarter turns (they map the grid
  onto itself), up to the sampling of the rotated kernels for other angles.
* :class:`VelocityCNN`: the same residual network with plain convolutions (2 channels in and out).

3D electrostatics ``rho -> E`` on a periodic cube, ``(B, R, R, R)`` (axes z, y, x) to
``(B, 3, R, R, R)`` with ``(E_x, E_y, E_z)``:

* :class:`SteerableEfieldNet`: ``SO(3)``-steerable (with the circular padding, SE(3) up to the
  grid): scalar in, hidden scalar + vector + ``l = 2`` fields with gated nonlinearities, vector out.
  ``f(R.rho) = R.f(rho)`` with ``(R.E)(p) = R E(R^-1 p)``, exactly for the 24 rotations of the cube.
* :class:`EfieldCNN`: the plain 3D CNN counterpart (1 channel in, 3 out).

All use circular padding ("same" size) and two data scales (scalars, so equivariance is kept);
``dtype`` sets the dtype of the weights and kernel bases (float64 for float64-accurate outputs).
:func:`calibrate` rescales the convolutions of a freshly built model to unit output RMS on a batch
of data (the demos apply it to every model, steerable or not).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from equiscale.continuum.models import count_parameters
from equiscale.groups import C, SO2, SO3
from equiscale.nn.grids.field_type import FieldType
from equiscale.nn.grids.steerable import SteerableConv2d, SteerableConv3d
from equiscale.nn.grids.steerable_nonlinear import GatedNonlinearity, PointwiseNonlinearity

__all__ = ["GatedActivation", "SteerableVelocityNet", "VelocityCNN", "SteerableEfieldNet", "EfieldCNN",
           "velocity_model", "efield_model", "match_width", "calibrate", "count_parameters"]


class GatedActivation(nn.Module):
    """Scalars through a pointwise function, the other fields through :class:`GatedNonlinearity`.

    ``in_type`` = ``scalars`` trivial fields, then the gated fields, then one trivial gate per gated
    field; ``out_type`` = the scalars and the gated fields. Equivariant for every group element (both
    parts act pointwise and commute with the representations).
    """

    def __init__(self, in_type: FieldType, scalars: int, function: str = "gelu") -> None:
        super().__init__()
        reps = in_type.representations
        rest = len(reps) - scalars
        if scalars < 0 or rest < 0 or rest % 2:
            raise ValueError(f"GatedActivation: {in_type!r} cannot be {scalars} scalars + gated fields + as many gates")
        self.in_type, self.scalars = in_type, scalars
        self.num_gated = rest // 2
        self._split = sum(rep.dim for rep in reps[:scalars])
        self.scalar_act = PointwiseNonlinearity(FieldType(in_type.group, reps[:scalars]), function) if scalars else None
        self.gate = GatedNonlinearity(FieldType(in_type.group, reps[scalars:]), self.num_gated) if self.num_gated else None
        out = list(reps[:scalars]) + (list(self.gate.out_type.representations) if self.gate is not None else [])
        self.out_type = FieldType(in_type.group, out)

    def forward(self, x: Tensor) -> Tensor:
        parts = []
        if self.scalar_act is not None:
            parts.append(self.scalar_act(x[:, :self._split]))
        if self.gate is not None:
            parts.append(self.gate(x[:, self._split:]))
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


class _Hidden:
    """The hidden field types: ``pre`` (a convolution's output, gates included) and ``post`` (after the activation)."""

    def __init__(self, group: Any, kind: str, width: int, multiplicities: Sequence[int] | None = None) -> None:
        self.group, self.kind = group, kind
        if kind == "regular":
            regular = group.regular_representation()
            self.pre = self.post = FieldType(group, [regular] * width)
            self.scalars = 0
        elif kind == "gated":
            counts = list(multiplicities or (width, width, max(1, width // 2)))
            irreps = [group.irrep(l) for l in range(len(counts))]
            gated = [rep for rep, count in zip(irreps[1:], counts[1:]) for _ in range(count)]
            self.scalars = counts[0]
            self.post = FieldType(group, [irreps[0]] * counts[0] + gated)
            self.pre = FieldType(group, [irreps[0]] * counts[0] + gated + [irreps[0]] * len(gated))
        else:
            raise ValueError(f"unknown hidden kind {kind!r}: use regular or gated")

    def activation(self) -> nn.Module:
        if self.kind == "regular":
            return PointwiseNonlinearity(self.pre, "gelu")
        return GatedActivation(self.pre, self.scalars, "gelu")


class _SteerableResNet(nn.Module):
    """``lift -> act``, ``blocks`` times ``h + act(conv(act(conv(h))))``, then a linear ``head`` convolution."""

    def __init__(self, conv: type, in_type: FieldType, hidden: _Hidden, out_type: FieldType, blocks: int,
                 kernel_size: int, lift_options: dict[str, Any] | None = None, **options: Any) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred 'same' padding), got {kernel_size}")
        options = {"padding": kernel_size // 2, "padding_mode": "circular", **options}
        lift = conv(in_type, hidden.pre, kernel_size, **options, **(lift_options or {}))
        self.lift = nn.Sequential(lift, hidden.activation())
        self.blocks = nn.ModuleList(
            nn.Sequential(conv(hidden.post, hidden.pre, kernel_size, **options), hidden.activation(),
                          conv(hidden.post, hidden.pre, kernel_size, **options), hidden.activation())
            for _ in range(blocks))
        self.head = conv(hidden.post, out_type, kernel_size, **options)
        self.in_type, self.out_type = in_type, out_type

    def forward(self, x: Tensor) -> Tensor:
        h = self.lift(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class _PlainResNet(nn.Module):
    """The plain-convolution counterpart of :class:`_SteerableResNet` (GELU activations)."""

    def __init__(self, conv: type, channels_in: int, width: int, channels_out: int, blocks: int, kernel_size: int,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred 'same' padding), got {kernel_size}")
        make = lambda i, o: conv(i, o, kernel_size, padding=kernel_size // 2, padding_mode="circular",  # noqa: E731
                                 dtype=dtype)
        self.lift = nn.Sequential(make(channels_in, width), nn.GELU())
        self.blocks = nn.ModuleList(nn.Sequential(make(width, width), nn.GELU(), make(width, width), nn.GELU())
                                    for _ in range(blocks))
        self.head = make(width, channels_out)

    def forward(self, x: Tensor) -> Tensor:
        h = self.lift(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


# --- 2D velocity ------------------------------------------------------------------------------------
class _VelocityIncrement(nn.Module):
    """``u -> u + delta_scale * net(u / field_scale)`` over velocity fields ``(B, 2, H, W)``."""

    def __init__(self, field_scale: float, delta_scale: float) -> None:
        super().__init__()
        self.register_buffer("field_scale", torch.tensor(float(field_scale)))
        self.register_buffer("delta_scale", torch.tensor(float(delta_scale)))
        self.net: nn.Module

    def forward(self, u: Tensor) -> Tensor:
        """``(B, 2, H, W)`` velocity at t -> the same shape at t + dt."""
        if u.dim() != 4 or u.shape[1] != 2:
            raise ValueError(f"{type(self).__name__}: velocity must be (B, 2, H, W) with (u_x, u_y) on axis 1, got "
                             f"{tuple(u.shape)}")
        if u.shape[-1] != u.shape[-2]:
            raise ValueError(f"{type(self).__name__}: the field is {u.shape[-2]}x{u.shape[-1]}, not square: rotations "
                             f"need H == W")
        return u + self.delta_scale.to(u.dtype) * self.net(u / self.field_scale.to(u.dtype))


class SteerableVelocityNet(_VelocityIncrement):
    """Residual steerable CNN for one step of a 2D velocity field, ``C(8)`` or ``SO(2)`` equivariant.

    ``group="C8"``: ``width`` regular fields (``8 * width`` channels), pointwise GELU.
    ``group="SO2"``: ``width`` scalars, ``width`` vectors and ``max(1, width // 2)`` frequency-2
    fields, gated. Input and output: one vector field ``(u_x, u_y)``; a rotation acts on both as
    ``(g.u)(p) = R u(R^-1 p)``.
    """

    def __init__(self, group: str = "C8", width: int = 4, blocks: int = 2, kernel_size: int = 5,
                 field_scale: float = 1.0, delta_scale: float = 1.0, dtype: torch.dtype | None = None) -> None:
        super().__init__(field_scale, delta_scale)
        name = group.upper().replace("(", "").replace(")", "")
        if name == "SO2":
            g = SO2()
            hidden = _Hidden(g, "gated", width)
            lift = None
        elif name.startswith("C") and name[1:].isdigit() and int(name[1:]) >= 3:
            g = C(int(name[1:]))
            hidden = _Hidden(g, "regular", width)
            # A vector reaches the highest irrep n/2 of a regular field only through the angular frequency
            # n/2 - 1 (3 for C(8)), above the kernels' default cap (the largest ring radius, 2 for 5x5).
            lift = {"max_frequency": max(2, g.n // 2 - 1)}
        else:
            raise ValueError(f"SteerableVelocityNet: group must be SO2 or Cn with n >= 3 (e.g. C8), got {group!r}")
        self.group, self.group_name = g, name
        vector = FieldType(g, [g.irrep(1)])
        self.net = _SteerableResNet(SteerableConv2d, vector, hidden, vector, blocks, kernel_size, lift_options=lift,
                                    dtype=dtype)


class VelocityCNN(_VelocityIncrement):
    """The plain-CNN counterpart of :class:`SteerableVelocityNet`: 2 channels in and out, ``width`` hidden."""

    def __init__(self, width: int = 8, blocks: int = 2, kernel_size: int = 5, field_scale: float = 1.0,
                 delta_scale: float = 1.0, dtype: torch.dtype | None = None) -> None:
        super().__init__(field_scale, delta_scale)
        self.net = _PlainResNet(nn.Conv2d, 2, width, 2, blocks, kernel_size, dtype)


# --- 3D electrostatics ------------------------------------------------------------------------------
class _EfieldScales(nn.Module):
    """``rho -> field_scale * net(rho / density_scale)`` over ``(B, R, R, R)`` or ``(B, 1, R, R, R)`` densities."""

    def __init__(self, density_scale: float, field_scale: float) -> None:
        super().__init__()
        self.register_buffer("density_scale", torch.tensor(float(density_scale)))
        self.register_buffer("field_scale", torch.tensor(float(field_scale)))
        self.net: nn.Module

    def forward(self, rho: Tensor) -> Tensor:
        """``(B, R, R, R)`` or ``(B, 1, R, R, R)`` charge density -> ``(B, 3, R, R, R)`` field (E_x, E_y, E_z)."""
        if rho.dim() == 4:
            rho = rho[:, None]
        if rho.dim() != 5 or rho.shape[1] != 1:
            raise ValueError(f"{type(self).__name__}: rho must be (B, R, R, R) or (B, 1, R, R, R), got {tuple(rho.shape)}")
        if len(set(rho.shape[2:])) != 1:
            raise ValueError(f"{type(self).__name__}: the grid is {'x'.join(map(str, rho.shape[2:]))}, not a cube: "
                             f"rotations need equal sides")
        return self.field_scale.to(rho.dtype) * self.net(rho / self.density_scale.to(rho.dtype))


class SteerableEfieldNet(_EfieldScales):
    """SO(3)-steerable residual CNN from a charge density (a scalar field) to its electric field (a vector field).

    Hidden fields: ``multiplicities = (scalars, vectors, l=2 fields)``, the non-scalars gated by
    sigmoid gates computed with them; scalars through GELU. ``(R.rho)(p) = rho(R^-1 p)`` maps to
    ``(R.E)(p) = R E(R^-1 p)``.
    """

    def __init__(self, multiplicities: Sequence[int] = (4, 4, 2), blocks: int = 1, kernel_size: int = 5,
                 density_scale: float = 1.0, field_scale: float = 1.0, dtype: torch.dtype | None = None) -> None:
        super().__init__(density_scale, field_scale)
        g = SO3()
        self.group = g
        hidden = _Hidden(g, "gated", 0, multiplicities)
        self.net = _SteerableResNet(SteerableConv3d, FieldType(g, [g.irrep(0)]), hidden, FieldType(g, [g.irrep(1)]),
                                    blocks, kernel_size, dtype=dtype)


class EfieldCNN(_EfieldScales):
    """The plain 3D CNN counterpart of :class:`SteerableEfieldNet` (1 channel in, 3 out, ``width`` hidden)."""

    def __init__(self, width: int = 8, blocks: int = 1, kernel_size: int = 5, density_scale: float = 1.0,
                 field_scale: float = 1.0, dtype: torch.dtype | None = None) -> None:
        super().__init__(density_scale, field_scale)
        self.net = _PlainResNet(nn.Conv3d, 1, width, 3, blocks, kernel_size, dtype)


# --- building and matching --------------------------------------------------------------------------
def _convolutions(model: nn.Module) -> list[nn.Module]:
    """The convolutions of ``model`` in definition order (plain, group or steerable: a ``weight`` and "Conv" in the name)."""
    return [m for m in model.modules() if "Conv" in type(m).__name__ and isinstance(getattr(m, "weight", None), Tensor)]


@torch.no_grad()
def calibrate(model: nn.Module, inputs: Tensor) -> list[float]:
    """Layer-sequential unit-variance initialisation: scale each convolution so that its output has unit RMS on ``inputs``.

    The convolutions are visited in definition order (the order of the forward pass in these
    networks); each one's weight and bias are multiplied by one positive number, which keeps every
    equivariance. Steerable kernels are initialised for white-noise inputs, and smooth fields add up
    coherently over the kernel, so without this a deep 3D network can start with outputs 100x too
    large. Returns the factors applied.
    """
    factors = []
    was_training = model.training
    model.eval()  # no batch statistics to update
    for conv in _convolutions(model):
        seen: list[Tensor] = []
        handle = conv.register_forward_hook(lambda module, args, output, seen=seen: seen.append(output))
        try:
            model(inputs)
        finally:
            handle.remove()
        rms = float(seen[0].double().pow(2).mean().sqrt())
        factor = 1.0 / rms if rms > 0 and math.isfinite(rms) else 1.0
        conv.weight.mul_(factor)
        if getattr(conv, "bias", None) is not None:
            conv.bias.mul_(factor)
        factors.append(factor)
    model.train(was_training)
    return factors


def match_width(build: Any, parameters: int, start: int = 1, stop: int = 512) -> int:
    """The width ``w`` whose ``count_parameters(build(w))`` is closest to ``parameters`` (counts grow with ``w``)."""
    best, best_gap = start, None
    for width in range(start, stop + 1):
        count = count_parameters(build(width))
        gap = abs(count - parameters)
        if best_gap is None or gap < best_gap:
            best, best_gap = width, gap
        if count > parameters:
            break
    return best


def velocity_model(model: str, dtype: torch.dtype | None = None, **settings: Any) -> nn.Module:
    """``"steerable"`` -> :class:`SteerableVelocityNet`, ``"cnn"`` -> :class:`VelocityCNN`,
    ``"gcnn"`` -> :class:`~equiscale.continuum.models.FluidGCNN` (on vorticity) from saved settings, in ``dtype``."""
    if model == "steerable":
        return SteerableVelocityNet(**settings, dtype=dtype)
    if model == "cnn":
        return VelocityCNN(**settings, dtype=dtype)
    if model == "gcnn":
        from equiscale.continuum.models import FluidGCNN

        return FluidGCNN(**settings).to(dtype or torch.get_default_dtype())
    raise ValueError(f"unknown velocity model {model!r}: use steerable, cnn or gcnn")


def efield_model(model: str, dtype: torch.dtype | None = None, **settings: Any) -> nn.Module:
    """``"steerable"`` -> :class:`SteerableEfieldNet`, ``"cnn"`` or ``"cnn-wide"`` -> :class:`EfieldCNN` from saved
    settings, in ``dtype``."""
    if model == "steerable":
        return SteerableEfieldNet(**settings, dtype=dtype)
    if model in ("cnn", "cnn-wide"):
        return EfieldCNN(**settings, dtype=dtype)
    raise ValueError(f"unknown efield model {model!r}: use steerable, cnn or cnn-wide")
