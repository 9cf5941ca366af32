"""Norm activation: rescale each irrep by a scalar function of its norm (as ``e3nn.nn.NormActivation``)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from equiscale import o3
from equiscale.errors import InvalidArgumentError
from equiscale.nn.points.gate import _constants_if_missing

__all__ = ["NormActivation"]


class NormActivation(nn.Module):
    r"""Scale each irrep :math:`x` of the input by :math:`\sigma(|x| + b) / |x|` (or by :math:`\sigma(|x| + b)`).

    Same signature, layout, numbers and state-dict keys as ``e3nn.nn.NormActivation`` (0.6). The nonlinearity is used
    as given (it is *not* normalised to unit second moment). With ``normalize=True`` the squared
    norms are clamped up to ``epsilon**2`` (default ``epsilon = 1e-8``) before the square root, so a
    zero irrep gives no NaN (its gradient through the norm is zero). ``normalize=False`` multiplies
    by :math:`\sigma(|x| + b)` directly (e3nn 0.6 raises TypeError here; we allow it, with a norm whose
    gradient at zero is zero).

    Args:
        irreps_in: the irreps of the features; ``irreps_out`` is the same.
        scalar_nonlinearity: an elementwise function :math:`\sigma`, e.g. ``torch.sigmoid``.
        normalize: divide by the norm, so the output norm is :math:`\sigma(|x| + b)`.
        epsilon: the smallest norm used when normalising; only with ``normalize=True``.
        bias: learn one additive bias :math:`b` per irrep (``num_irreps`` of them, zero at start).

    Shapes: ``(..., irreps_in.dim)`` -> ``(..., irreps_in.dim)``.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps | str,
        scalar_nonlinearity: Callable[[torch.Tensor], torch.Tensor],
        normalize: bool = True,
        epsilon: float | None = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out = o3.Irreps(irreps_in)
        if epsilon is not None and not normalize:
            raise InvalidArgumentError("epsilon is only used with normalize=True")
        if normalize and epsilon is None:
            epsilon = 1e-8
        if epsilon is not None and not epsilon > 0:
            raise InvalidArgumentError(f"epsilon must be strictly positive, got {epsilon!r}")
        self.epsilon = epsilon
        self.normalize = normalize
        self.scalar_nonlinearity = scalar_nonlinearity
        self.bias = bias
        if bias:
            self.biases = nn.Parameter(torch.zeros(self.irreps_in.num_irreps))
        # e3nn's submodules, kept for its irreps and state-dict keys (norm.tp.*, scalar_multiplier.*);
        # the forward below computes the same numbers without them.
        self.norm = o3.Norm(self.irreps_in, squared=epsilon is not None)
        self.scalar_multiplier = o3.ElementwiseTensorProduct(self.norm.irreps_out, self.irreps_in)
        self.register_load_state_dict_pre_hook(_constants_if_missing("norm", "scalar_multiplier"))
        self._dim_in = self.irreps_in.dim
        self._blocks = [(mul, ir.dim) for mul, ir in self.irreps_in]
        # Sum of squares per irrep copy: component c of the input belongs to irrep copy owner[c].
        owner = [k for k, d in enumerate(ir.dim for mul, ir in self.irreps_in for _ in range(mul)) for _ in range(d)]
        self.register_buffer("_owner", torch.tensor(owner, dtype=torch.long), persistent=False)

    def _squared_norms(self, features: torch.Tensor) -> torch.Tensor:
        parts = []
        for (mul, dim), chunk in zip(self._blocks, features.split([mul * dim for mul, dim in self._blocks], dim=-1)):
            parts.append(chunk.reshape(*chunk.shape[:-1], mul, dim).pow(2).sum(-1))
        if not parts:
            return features.new_zeros(*features.shape[:-1], 0)
        return torch.cat(parts, dim=-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self._dim_in:
            raise InvalidArgumentError(
                f"features must have shape (..., {self._dim_in}) for irreps_in = {self.irreps_in}, got {tuple(features.shape)}"
            )
        squared = self._squared_norms(features)
        if self.epsilon is not None:
            eps2 = self.epsilon * self.epsilon
            norms = torch.where(squared < eps2, torch.full_like(squared, eps2), squared).sqrt()
        else:
            positive = squared > 0
            norms = torch.where(positive, torch.where(positive, squared, 1.0).sqrt(), 0.0)
        argument = norms + self.biases if self.bias else norms
        scalings = self.scalar_nonlinearity(argument)
        if self.normalize:
            scalings = scalings / norms
        return features * scalings.index_select(-1, self._owner)

    def __repr__(self) -> str:
        return f"{type(self).__name__} ({self.irreps_in}, normalize={self.normalize}, bias={self.bias})"
