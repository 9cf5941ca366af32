"""e3nn's ``nn.Identity``: the identity map between two equal irreps (after simplification)."""
from __future__ import annotations

import torch
from torch import nn

from equiscale import o3
from equiscale.errors import InvalidArgumentError

__all__ = ["Identity"]


class Identity(nn.Module):
    """Return the input unchanged; ``irreps_in`` and ``irreps_out`` must be equal once simplified.

    Same arguments and state dict (a buffer ``output_mask`` of ones, one per component) as
    ``e3nn.nn.Identity`` (0.6).

    Args:
        irreps_in: the irreps of the input.
        irreps_out: the irreps of the output, the same as ``irreps_in`` up to
            :meth:`~equiscale.o3.Irreps.simplify`.

    Shapes: ``(..., irreps_in.dim)`` -> the same tensor.
    """

    def __init__(self, irreps_in: o3.Irreps | str, irreps_out: o3.Irreps | str) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in).simplify()
        self.irreps_out = o3.Irreps(irreps_out).simplify()
        if self.irreps_in != self.irreps_out:
            raise InvalidArgumentError(f"Identity needs equal irreps, got irreps_in = {self.irreps_in} and irreps_out = {self.irreps_out}")
        self.register_buffer("output_mask", torch.ones(self.irreps_out.dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return ``features`` (the same tensor object, as e3nn does)."""
        return features

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out})"
