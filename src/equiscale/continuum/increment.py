"""The fluid model contract every surrogate keeps: ``w(t) -> w(t + dt)`` in increment form.

:class:`IncrementModel` takes vorticity ``(B, H, W)`` or ``(B, 1, H, W)`` (and returns it in the same
shape), checks it once (shape, a square grid, finite values, whatever grid the subclass needs) and
returns ``w + delta_scale * net(w / field_scale)``, with two scalar scales from the training data.
Scalars commute with rotations, so the form keeps whatever symmetry ``net`` has. Subclasses define
``net`` on ``(B, 1, H, W)`` fields and may extend :meth:`IncrementModel.check_grid`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from equiscale.errors import InvalidArgumentError
from equiscale.groups import C, D

__all__ = ["IncrementModel", "parse_group", "pseudo_scalar"]


def parse_group(name: Any) -> Any:
    """``"C4"``/``"D4"`` (or a group object) -> ``C(4)``/``D(4)``."""
    if not isinstance(name, str):
        return name
    text = name.strip().upper().replace("(", "").replace(")", "")
    if len(text) >= 2 and text[0] in "CD" and text[1:].isdigit():
        return (C if text[0] == "C" else D)(int(text[1:]))
    raise ValueError(f"unknown group {name!r}: use C4 or D4 (or Cn / Dn)")


def pseudo_scalar(group: Any) -> Any:
    """The 1-d representation vorticity carries: the sign character under D(n) (reflections flip it), None under C(n)."""
    return group.irrep(1, 0) if group.name.startswith("D") else None


def _check_finite(w: Tensor, name: str) -> None:
    # skipped while torch.compile/export traces the model: a branch on tensor values would break the graph
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    if not bool(torch.isfinite(w).all()):
        raise InvalidArgumentError(f"{name}: the vorticity holds NaN or infinite values")


class IncrementModel(nn.Module):
    """``w -> w + delta_scale * net(w / field_scale)`` over ``(B, H, W)`` or ``(B, 1, H, W)`` fields.

    Args:
        field_scale: typical size of the field (the training data's standard deviation).
        delta_scale: typical size of one step's change.
    """

    def __init__(self, field_scale: float, delta_scale: float) -> None:
        super().__init__()
        self.register_buffer("field_scale", torch.tensor(float(field_scale)))
        self.register_buffer("delta_scale", torch.tensor(float(delta_scale)))

    def net(self, x: Tensor) -> Tensor:  # pragma: no cover - overridden
        """``(B, 1, H, W)`` -> ``(B, 1, H, W)``: the scaled increment."""
        raise NotImplementedError

    def check_grid(self, height: int, width: int) -> None:
        """InvalidArgumentError unless the model can run on an ``height x width`` grid (square here)."""
        if height != width:
            raise InvalidArgumentError(f"{type(self).__name__}: the field is {height}x{width}, not square: "
                                       f"90-degree rotations need H == W")

    def forward(self, w: Tensor) -> Tensor:
        """``(B, H, W)`` or ``(B, 1, H, W)`` vorticity at t -> the same shape at t + dt."""
        name = type(self).__name__
        squeeze = w.dim() == 3
        if squeeze:
            w = w[:, None]
        if w.dim() != 4 or w.shape[1] != 1:
            raise InvalidArgumentError(f"{name}: vorticity must be (B, H, W) or (B, 1, H, W), got {tuple(w.shape)}")
        self.check_grid(w.shape[-2], w.shape[-1])
        _check_finite(w, name)
        out = w + self.delta_scale.to(w.dtype) * self.net(w / self.field_scale.to(w.dtype))
        return out[:, 0] if squeeze else out
