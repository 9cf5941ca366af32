"""The radial network: a small bias-free MLP from radial-basis values to per-edge weights.

Its parametrisation is e3nn's ``FullyConnectedNet`` (and NequIP's): weights drawn from N(0, 1) and
divided by ``sqrt(fan_in)`` in the forward pass, activations normalised to unit second moment,
no biases (so an edge beyond the cutoff, whose basis values are all zero, gets zero weights and
exerts no force). ``weights[i]`` has the shape of e3nn's ``layer{i}.weight``, so weights can be
copied between the two.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from equiscale.nn.points.activation import normalize2mom

__all__ = ["RadialMLP"]


class RadialMLP(nn.Module):
    """``x -> W_L^T phi(... phi(W_1^T x / sqrt(h_0)) ...) / sqrt(h_{L-1})``, no biases.

    Args:
        sizes: ``[h_0, h_1, ..., h_L]``: input size, hidden sizes, output size (at least two).
        act: the hidden activation (normalised with :class:`normalize2mom`); None for a linear map.

    Shapes: ``(..., sizes[0])`` -> ``(..., sizes[-1])``.
    """

    def __init__(self, sizes: Sequence[int], act: Callable[[torch.Tensor], torch.Tensor] | None = torch.nn.functional.silu) -> None:
        super().__init__()
        sizes = [int(h) for h in sizes]
        if len(sizes) < 2 or any(h < 1 for h in sizes):
            raise ValueError(f"sizes must list at least two positive layer sizes, got {sizes}")
        self.sizes = sizes
        self.act = normalize2mom(act) if act is not None else None
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(a, b)) for a, b in zip(sizes, sizes[1:])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.sizes[0]:
            raise ValueError(f"x must have shape (..., {self.sizes[0]}), got {tuple(x.shape)}")
        last = len(self.weights) - 1
        scale = 1.0  # the activation's normalisation constant, folded into the next (small) weight matrix
        for i, weight in enumerate(self.weights):
            x = x @ (weight * (scale * weight.shape[0] ** -0.5))
            if i < last and self.act is not None:
                x = self.act.f(x)
                scale = 1.0 if self.act.is_identity else self.act.cst
        return x

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}"
