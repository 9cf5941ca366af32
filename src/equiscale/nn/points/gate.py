"""The gate nonlinearity of e3nn: activations on scalars, scalar gates on everything else.

Same signature, input layout, ``irreps_in``/``irreps_out``, numbers and state-dict keys as
``e3nn.nn.Gate`` (0.6).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from equiscale import o3
from equiscale.errors import InvalidArgumentError
from equiscale.nn.points.activation import Activation

__all__ = ["Gate"]


class Gate(nn.Module):
    r"""Gate activation: :math:`\left(\bigoplus_i \phi_i(x_i)\right) \oplus \left(\bigoplus_j \psi_j(g_j)\, y_j\right)`.

    The scalars ``x`` (``irreps_scalars``) go through ``act_scalars``; each irrep of ``y``
    (``irreps_gated``) is multiplied by one gate scalar ``g`` (``irreps_gates``) passed through
    ``act_gates``. Activations are normalised to unit second moment (see
    :class:`~equiscale.nn.points.activation.normalize2mom`), as in e3nn.

    The input holds the three parts together, **sorted by irrep** (e3nn's ``Irreps.sort``):
    ``irreps_in = (irreps_scalars + irreps_gates + irreps_gated).sort().irreps.simplify()``. The
    output is ``irreps_out = act_scalars' irreps + gated irreps`` (a gated ``l`` irrep takes the
    parity of its gate: an odd gate flips it), in that order, not sorted.

    ``mul`` is the :class:`~equiscale.o3.ElementwiseTensorProduct` of the gated irreps and the
    gates, as in e3nn: it gives the gated part of ``irreps_out`` and e3nn's state-dict entries
    (``mul.weight``, empty, and ``mul.output_mask``), so state dicts move between the two; the
    forward multiplies by the gates directly (the same numbers: a product with a ``0e`` scalar
    under component normalisation is the plain product).

    Args:
        irreps_scalars: scalars (l = 0) passed through ``act_scalars``.
        act_scalars: one function (or None) per entry of ``irreps_scalars``.
        irreps_gates: scalars used as gates, as many irreps as ``irreps_gated`` has.
        act_gates: one function (or None) per entry of ``irreps_gates``.
        irreps_gated: the irreps to gate.

    Shapes: ``(..., irreps_in.dim)`` -> ``(..., irreps_out.dim)``.
    """

    def __init__(
        self,
        irreps_scalars: o3.Irreps | str,
        act_scalars: Sequence[Callable | None],
        irreps_gates: o3.Irreps | str,
        act_gates: Sequence[Callable | None],
        irreps_gated: o3.Irreps | str,
    ) -> None:
        super().__init__()
        scalars, gates, gated = o3.Irreps(irreps_scalars), o3.Irreps(irreps_gates), o3.Irreps(irreps_gated)
        if any(ir.l > 0 for _, ir in gates):
            raise InvalidArgumentError(f"irreps_gates must be scalars, got {gates}")
        if any(ir.l > 0 for _, ir in scalars):
            raise InvalidArgumentError(f"irreps_scalars must be scalars, got {scalars}")
        if gates.num_irreps != gated.num_irreps:
            raise InvalidArgumentError(
                f"irreps_gated has {gated.num_irreps} irreps but irreps_gates has {gates.num_irreps} gate scalars: they must match"
            )
        self.irreps_scalars, self.irreps_gates, self.irreps_gated = scalars.simplify(), gates.simplify(), gated.simplify()
        parts = [self.irreps_scalars, self.irreps_gates, self.irreps_gated]
        joined = sum(parts, o3.Irreps([]))
        sorted_irreps, permutation, _ = joined.sort()
        self.irreps_in = sorted_irreps.simplify()
        self._dim_in = self.irreps_in.dim
        # Gather index that turns the sorted input into [scalars | gates | gated].
        starts = [block.start for block in sorted_irreps.slices()]
        index = [
            i
            for k, (mul, ir) in enumerate(joined)
            for i in range(starts[permutation[k]], starts[permutation[k]] + mul * ir.dim)
        ]
        self._identity_order = index == list(range(len(index)))
        self.register_buffer("_order", torch.tensor(index, dtype=torch.long), persistent=False)
        self._split = [p.dim for p in parts]

        self.act_scalars = Activation(scalars, act_scalars)
        self.act_gates = Activation(gates, act_gates)
        # Each gate scalar repeated over the components of the irrep it gates.
        spread = [j for j, d in enumerate(ir.dim for mul, ir in self.irreps_gated for _ in range(mul)) for _ in range(d)]
        self.register_buffer("_spread", torch.tensor(spread, dtype=torch.long), persistent=False)
        self.mul = o3.ElementwiseTensorProduct(gated, self.act_gates.irreps_out)
        self.irreps_out = self.act_scalars.irreps_out + self.mul.irreps_out
        self.register_load_state_dict_pre_hook(_constants_if_missing("mul"))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self._dim_in:
            raise InvalidArgumentError(
                f"features must have shape (..., {self._dim_in}) for irreps_in = {self.irreps_in}, got {tuple(features.shape)}"
            )
        if not self._identity_order:
            features = features.index_select(-1, self._order)
        scalars, gates, gated = features.split(self._split, dim=-1)
        scalars = self.act_scalars(scalars)
        if gates.shape[-1] == 0:
            return scalars
        gates = self.act_gates(gates)
        gated = gated * gates.index_select(-1, self._spread)
        return torch.cat([scalars, gated], dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__} ({self.irreps_in} -> {self.irreps_out})"


def _constants_if_missing(*names: str):
    """A load hook that fills the constant entries of submodules ``names`` when a state dict lacks them.

    Those entries (an empty weight, an output mask of ones) carry no learnt value; state dicts
    saved before the submodules existed then still load strictly.
    """

    def hook(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
        for name in names:
            for key, value in getattr(module, name).state_dict().items():
                state_dict.setdefault(f"{prefix}{name}.{key}", value)

    return hook
