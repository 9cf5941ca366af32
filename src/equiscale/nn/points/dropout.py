"""e3nn's equivariant ``Dropout``: drop whole irreps, never single components."""
from __future__ import annotations

import torch
from torch import nn

from equiscale import o3
from equiscale.errors import InvalidArgumentError

__all__ = ["Dropout"]


class Dropout(nn.Module):
    r"""Equivariant dropout: :math:`B_{zai} = x_{zi} A_{zai} / (1 - p)` with :math:`x_{zi} \sim \text{Bernoulli}(1 - p)`.

    In training mode each irrep copy ``i`` of each batch element ``z`` is kept (and scaled by
    :math:`1/(1-p)`) or zeroed as a whole, the same for every index ``a`` between the batch axis
    and the last axis; a rotation acts inside an irrep, so it commutes with the mask. In eval
    mode it is the identity. Same arguments and numbers as ``e3nn.nn.Dropout`` (0.6): the masks are
    drawn from torch's global generator in e3nn's order, so under the same seed both drop the same
    irreps.

    Args:
        irreps: the irreps of the features.
        p: the probability to drop an irrep, in [0, 1].

    Shapes: ``(batch, ..., irreps.dim)`` -> the same.
    """

    def __init__(self, irreps: o3.Irreps | str, p: float) -> None:
        super().__init__()
        self.irreps = o3.Irreps(irreps)
        if not 0.0 <= p <= 1.0:
            raise InvalidArgumentError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = p
        self.register_buffer(
            "_expand",
            torch.tensor([k for k, d in enumerate(ir.dim for mul, ir in self.irreps for _ in range(mul)) for _ in range(d)],
                         dtype=torch.long),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop irreps (training) or return ``x`` (eval).

        Args:
            x: features of shape ``(batch, ..., irreps.dim)``.

        Returns:
            a tensor of the same shape.
        """
        if x.dim() < 2 or x.shape[-1] != self.irreps.dim:
            raise InvalidArgumentError(f"x must have shape (batch, ..., {self.irreps.dim}) for {self.irreps}, got {tuple(x.shape)}")
        if not self.training:
            return x
        batch = x.shape[0]
        noises = []
        for mul, _ in self.irreps:  # one draw per entry, in e3nn's order
            noise = x.new_empty(batch, mul)
            if self.p >= 1:
                noise.fill_(0)
            elif self.p <= 0:
                noise.fill_(1)
            else:
                noise.bernoulli_(1 - self.p).div_(1 - self.p)
            noises.append(noise)
        noise = torch.cat(noises, dim=-1) if noises else x.new_zeros(batch, 0)
        noise = noise.index_select(-1, self._expand)
        return x * noise.reshape((batch,) + (1,) * (x.dim() - 2) + (self.irreps.dim,))

    def __repr__(self) -> str:
        return f"{type(self).__name__} ({self.irreps}, p={self.p})"
