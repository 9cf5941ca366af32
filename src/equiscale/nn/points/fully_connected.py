"""e3nn's ``FullyConnectedNet``: a bias-free MLP whose layers keep unit variance.

Same signature, numbers and state-dict keys (``layer0.weight``, ``layer1.weight``, ...) as
``e3nn.nn.FullyConnectedNet`` (0.6); the weights are drawn in the same order from torch's global
generator, so under the same seed the two nets are equal. For the radial network of a
message-passing layer see also :class:`~equiscale.nn.points.mlp.RadialMLP` (the same map, its
activation constant folded into the next weight).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from equiscale.errors import InvalidArgumentError
from equiscale.nn.points.activation import normalize2mom

__all__ = ["FullyConnectedNet"]


class _Layer(nn.Module):
    """``x -> act(x @ W / sqrt(h_in var_in)) sqrt(var_out)``, or ``x @ W / sqrt(h_in var_in / var_out)`` without act."""

    def __init__(self, h_in: int, h_out: int, act: nn.Module | None, var_in: float, var_out: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(h_in, h_out))
        self.act = act
        self.h_in, self.h_out, self.var_in, self.var_out = h_in, h_out, var_in, var_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.h_in:
            raise InvalidArgumentError(f"input must have shape (..., {self.h_in}), got {tuple(x.shape)}")
        if self.act is None:
            return x @ (self.weight / (self.h_in * self.var_in / self.var_out) ** 0.5)
        x = self.act(x @ (self.weight / (self.h_in * self.var_in) ** 0.5))
        return x * self.var_out**0.5

    def __repr__(self) -> str:
        act = self.act.f if isinstance(self.act, normalize2mom) else self.act
        name = getattr(act, "__name__", type(act).__name__ if isinstance(act, nn.Module) else act)
        return f"Layer({self.h_in}->{self.h_out}, act={name})"


class FullyConnectedNet(nn.Sequential):
    r"""A fully connected network without biases, each layer normalised to keep unit variance.

    Layer ``i`` maps ``h_i -> h_{i+1}`` as :math:`x \mapsto \phi(x W_i / \sqrt{h_i v_i})\sqrt{v_{i+1}}`
    with ``W_i ~ N(0, 1)`` of shape ``(h_i, h_{i+1})``, where :math:`\phi` is ``act`` scaled to unit
    second moment under a standard normal (:class:`~equiscale.nn.points.activation.normalize2mom`),
    ``v_0 = variance_in``, ``v_L = variance_out`` and 1 in between. The last layer has no
    activation unless ``out_act``; a layer without activation is :math:`x W_i / \sqrt{h_i v_i / v_{i+1}}`.

    Args:
        hs: the sizes ``[h_0, h_1, ..., h_L]``: input, hidden and output.
        act: the activation :math:`\phi` (None: a linear net).
        variance_in: the expected variance of the input's entries.
        variance_out: the variance wanted for the output's entries.
        out_act: apply the activation after the last layer too.

    Shapes: ``(..., hs[0])`` -> ``(..., hs[-1])``.
    """

    def __init__(
        self,
        hs: Sequence[int],
        act: Callable[[torch.Tensor], torch.Tensor] | None = None,
        variance_in: float = 1,
        variance_out: float = 1,
        out_act: bool = False,
    ) -> None:
        super().__init__()
        self.hs = list(hs)
        if not self.hs or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hs):
            raise InvalidArgumentError(f"hs must be a non-empty list of positive ints, got {self.hs}")
        for name, value in (("variance_in", variance_in), ("variance_out", variance_out)):
            if not value > 0:
                raise InvalidArgumentError(f"{name} must be positive, got {value!r}")
        if act is not None:
            act = normalize2mom(act)
        var_in = variance_in
        for i, (h1, h2) in enumerate(zip(self.hs, self.hs[1:])):
            last = i == len(self.hs) - 2
            var_out = variance_out if last else 1
            self.add_module(f"layer{i}", _Layer(h1, h2, act if (out_act or not last) else None, var_in, var_out))
            var_in = var_out

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.hs}"
