"""Measure how far a function is from equivariance, for any group and any kind of input.

``equivariance_error(fn, inputs, group, in_reps, out_reps)`` draws random group elements g from
``group.sample`` and compares ``fn(g . x)`` with ``g . fn(x)``. Each input and output has an
*action*, which says how g acts on it:

- a ``groups.Representation``: acts on the last axis, ``x -> x @ rho(g)^T``;
- an ``o3.Irreps`` or irreps string (group ``SO3()``/``O3()``): ``x -> x @ D(g)^T`` in e3nn's
  ``mul_ir`` layout, parity included (``D_from_matrix`` of an improper g);
- ``None`` or ``Invariant()``: left unchanged (atom types, edge indices, scalars of known invariance);
- ``Positions()``: Cartesian points, ``x -> x @ R^T + t``, with R the standard representation of g
  and t a random translation when ``translations=True``;
- ``GridField(rep, axis)``: a field sampled on a square or cubic grid, whose samples move with
  the grid and whose values at each point are acted on by ``rep`` along ``axis`` (``None``: scalars).

The action is applied in float64 and the transformed input is cast back to the input's dtype, so
the tester adds no error of its own beyond that rounding. The returned error is *relative*:
``max |fn(g.x) - g.fn(x)| / max |fn(x)|`` over samples and outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

__all__ = [
    "Invariant",
    "Positions",
    "GridField",
    "OnLastAxis",
    "IrrepsAction",
    "as_action",
    "equivariance_error",
    "assert_equivariant",
]


def _standard_matrix(group: Any, g: torch.Tensor) -> torch.Tensor:
    return group.standard_representation()(g).to(torch.float64)


@dataclass(frozen=True)
class Invariant:
    """The trivial action: the tensor is passed through unchanged (any dtype)."""

    def apply(self, group: Any, g: torch.Tensor, x: torch.Tensor, translation: torch.Tensor | None) -> torch.Tensor:
        return x


@dataclass(frozen=True)
class OnLastAxis:
    """A representation acting on the last axis: ``x -> x @ rho(g)^T``."""

    representation: Any

    def apply(self, group: Any, g: torch.Tensor, x: torch.Tensor, translation: torch.Tensor | None) -> torch.Tensor:
        matrix = self.representation(g).to(torch.float64)
        if x.shape[-1] != matrix.shape[-1]:
            raise ValueError(
                f"input last dimension {x.shape[-1]} does not match the representation's dimension {matrix.shape[-1]}"
            )
        return x @ matrix.T


@dataclass(frozen=True)
class IrrepsAction:
    """O(3) acting through e3nn-style irreps on the last axis (group elements are 3x3 matrices)."""

    irreps: Any

    def apply(self, group: Any, g: torch.Tensor, x: torch.Tensor, translation: torch.Tensor | None) -> torch.Tensor:
        from equiscale import o3

        irreps = o3.Irreps(self.irreps)
        if x.shape[-1] != irreps.dim:
            raise ValueError(f"input last dimension {x.shape[-1]} does not match irreps {irreps} (dim {irreps.dim})")
        matrix = irreps.D_from_matrix(_standard_matrix(group, g))
        return x @ matrix.T


@dataclass(frozen=True)
class Positions:
    """Cartesian points ``(..., d)``: rotated by the standard representation, then translated."""

    def apply(self, group: Any, g: torch.Tensor, x: torch.Tensor, translation: torch.Tensor | None) -> torch.Tensor:
        rotation = _standard_matrix(group, g)
        y = x @ rotation.T
        return y if translation is None else y + translation


@dataclass(frozen=True)
class GridField:
    """A field on a regular grid whose spatial axes are the last ``ndim`` axes.

    2D fields are ``[..., H, W]`` with x along W (columns) and y along H (rows); 3D fields are
    ``[..., D, H, W]`` sampling (z, y, x). Pixel centres are at ``index - (size - 1) / 2``, so the grid
    is symmetric about its centre, and ``(g.f)(p) = rho(g) f(g^-1 p)``. Only elements whose standard
    representation maps the grid onto itself (signed permutation matrices: 90-degree rotations and
    axis flips) are exact; others raise ValueError. ``representation`` (None for scalars) acts on the
    values along ``axis`` (e.g. ``axis=-3`` for the rotation axis of ``(B, C, |G|, H, W)`` features).
    """

    representation: Any = None
    axis: int = -3
    ndim: int = 2

    def apply(self, group: Any, g: torch.Tensor, x: torch.Tensor, translation: torch.Tensor | None) -> torch.Tensor:
        y = _move_grid(x, _standard_matrix(group, g), self.ndim)
        if self.representation is None:
            return y
        matrix = self.representation(g).to(torch.float64)
        y = torch.movedim(y, self.axis, -1)
        if y.shape[-1] != matrix.shape[-1]:
            raise ValueError(f"field axis {self.axis} has size {y.shape[-1]}, the representation dimension {matrix.shape[-1]}")
        return torch.movedim(y @ matrix.T, -1, self.axis)


def _move_grid(field: torch.Tensor, matrix: torch.Tensor, ndim: int) -> torch.Tensor:
    """``f'(p) = f(M^-1 p)`` for a signed permutation matrix M in (x, y[, z]) coordinates."""
    if matrix.shape != (ndim, ndim):
        raise ValueError(f"a {ndim}D grid needs {ndim}x{ndim} group matrices, got {tuple(matrix.shape)}")
    rounded = matrix.round()
    is_signed_permutation = (rounded.abs().sum(0) == 1).all() and (rounded.abs().sum(1) == 1).all()
    if not is_signed_permutation or (matrix - rounded).abs().max() > 1e-9:
        raise ValueError(f"group element {matrix.tolist()} does not map the grid onto itself (not a 90-degree rotation or flip)")
    sizes = field.shape[-ndim:]  # array order: (z,) y, x
    if rounded.abs().argmax(1).tolist() != list(range(ndim)) and len(set(sizes)) != 1:
        raise ValueError(f"rotating a grid of shape {tuple(sizes)} needs equal sides")
    # Array axis a (counted from the last) holds coordinate a: 0 = x, 1 = y, 2 = z.
    centred = [torch.arange(n, dtype=torch.float64) - (n - 1) / 2 for n in reversed(sizes)]
    points = torch.stack(torch.meshgrid(*centred, indexing="ij"), dim=-1)  # [x, y(, z), coord]
    source = points @ rounded  # M^-1 p = M^T p for an orthogonal M
    index = (source + torch.tensor([(n - 1) / 2 for n in reversed(sizes)], dtype=torch.float64)).round().long()
    flat_strides = [1]
    for n in reversed(sizes[1:]):  # strides of x, y(, z) in the flattened array
        flat_strides.append(flat_strides[-1] * n)
    flat_index = sum(index[..., a] * flat_strides[a] for a in range(ndim))
    # points is indexed [x, y, z]; the field is stored [z, y, x]: reverse to array order.
    flat_index = flat_index.permute(*reversed(range(ndim))).reshape(-1)
    flat = field.reshape(*field.shape[:-ndim], -1)
    return flat[..., flat_index].reshape(field.shape)


def as_action(spec: Any) -> Any:
    """Turn a user's description of how the group acts (see the module docstring) into an action."""
    if spec is None:
        return Invariant()
    if hasattr(spec, "apply"):
        return spec
    from equiscale import o3

    if isinstance(spec, (str, o3.Irreps)):
        return IrrepsAction(o3.Irreps(spec))
    if callable(spec) and hasattr(spec, "dim"):
        return OnLastAxis(spec)
    raise ValueError(f"cannot use {spec!r} as a group action: give a Representation, Irreps, Positions(), GridField(...) or None")


def _as_tuple(value: Any) -> tuple:
    # exact types: an Irreps is a tuple subclass but describes one action, not several
    return tuple(value) if type(value) in (tuple, list) else (value,)


def _actions(specs: Any, count: int, what: str) -> list:
    specs = list(_as_tuple(specs))
    if len(specs) != count:
        raise ValueError(f"{what}: got {len(specs)} actions for {count} tensors")
    return [as_action(s) for s in specs]


def _act(action: Any, group: Any, g: torch.Tensor, x: Any, translation: torch.Tensor | None) -> Any:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        if not isinstance(action, Invariant):
            raise ValueError(f"{type(action).__name__} needs a floating-point tensor, got {type(x).__name__}")
        return x
    return action.apply(group, g, x.detach().to(torch.float64), translation)


def equivariance_error(
    fn: Callable[..., Any],
    inputs: Any,
    group: Any,
    in_reps: Any,
    out_reps: Any,
    n_samples: int = 4,
    translations: bool = False,
    generator: torch.Generator | None = None,
) -> float:
    """Largest relative error ``|fn(g.x) - g.fn(x)| / max|fn(x)|`` over ``n_samples`` random g.

    ``inputs`` is a tensor or a tuple of tensors passed positionally to ``fn``; ``in_reps`` and
    ``out_reps`` give one action per input and per output (a single one when there is one tensor).
    ``translations=True`` adds a random translation that ``Positions`` inputs and outputs share.
    """
    inputs = _as_tuple(inputs)
    in_actions = _actions(in_reps, len(inputs), "in_reps")
    outputs = _as_tuple(fn(*inputs))
    out_actions = _actions(out_reps, len(outputs), "out_reps")
    elements = group.sample(n_samples, generator=generator)
    worst = 0.0
    for g in elements:
        translation = None
        if translations:
            dim = _standard_matrix(group, g).shape[-1]
            translation = torch.randn(dim, dtype=torch.float64, generator=generator)
        moved = [_act(a, group, g, x, translation) for a, x in zip(in_actions, inputs)]
        moved = [m.to(x.dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else m for m, x in zip(moved, inputs)]
        result = _as_tuple(fn(*moved))
        for action, y, y_g in zip(out_actions, outputs, result):
            expected = _act(action, group, g, y, translation)
            scale = y.detach().to(torch.float64).abs().max().clamp_min(torch.finfo(torch.float64).tiny)
            error = (y_g.detach().to(torch.float64) - expected).abs().max() / scale
            worst = max(worst, float(error))
    return worst


def assert_equivariant(
    fn: Callable[..., Any],
    inputs: Any,
    group: Any,
    in_reps: Any,
    out_reps: Any,
    tolerance: float | None = None,
    **kwargs: Any,
) -> float:
    """Raise AssertionError if ``equivariance_error`` exceeds ``tolerance``; return the error.

    The default tolerance depends on the inputs' dtype: 1e-10 for float64, 1e-4 for float32.
    """
    if tolerance is None:
        floats = [x for x in _as_tuple(inputs) if isinstance(x, torch.Tensor) and x.is_floating_point()]
        tolerance = 1e-10 if floats and all(x.dtype == torch.float64 for x in floats) else 1e-4
    error = equivariance_error(fn, inputs, group, in_reps, out_reps, **kwargs)
    if not error <= tolerance:
        raise AssertionError(f"equivariance error {error:.3e} exceeds tolerance {tolerance:.1e}")
    return error
