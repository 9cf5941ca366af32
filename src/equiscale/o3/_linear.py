"""``Linear``: O(3)-equivariant linear map between irreps, e3nn 0.6's ``o3.Linear`` API.

Each instruction ``(i_in, i_out)`` mixes the channels of ``irreps_in[i_in]`` into those of
``irreps_out[i_out]`` (same irrep) with a ``(mul_in, mul_out)`` weight block; blocks are laid out
in instruction order in one flat weight vector, scaled by ``1/sqrt(fan_in)`` (``path_normalization``
``element``: all inputs of the output; ``path``: per path). Optional biases on scalar outputs.
State-dict keys: ``weight``, ``bias``, ``output_mask``, as e3nn.
"""
from __future__ import annotations

from math import prod
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from equiscale.o3._irreps import Irreps

__all__ = ["Linear"]


class Instruction(NamedTuple):
    """e3nn's ``Linear`` instruction: ``i_in == -1`` marks a bias."""

    i_in: int
    i_out: int
    path_shape: tuple
    path_weight: float


class Linear(torch.nn.Module):
    r"""Equivariant linear map ``(..., irreps_in.dim) -> (..., irreps_out.dim)`` (e3nn's).

    With ``f_in``/``f_out`` the input is ``(..., f_in, irreps_in.dim)``, the weights
    ``(f_in, f_out, weight_numel)`` and the output ``(..., f_out, irreps_out.dim)``.
    ``shared_weights=False`` takes per-sample weights ``(..., weight_numel)`` in ``forward``.
    ``biases``: ``True`` (every scalar ``0e`` output) or one flag per output irrep.
    """

    def __init__(self, irreps_in, irreps_out, *, f_in: Optional[int] = None,
                 f_out: Optional[int] = None, internal_weights: Optional[bool] = None,
                 shared_weights: Optional[bool] = None,
                 instructions: Optional[Sequence[Tuple[int, int]]] = None,
                 biases: Union[bool, List[bool]] = False, path_normalization: str = "element",
                 _optimize_einsums=None) -> None:
        super().__init__()
        if path_normalization not in ("element", "path"):
            raise ValueError(f"path_normalization: expected 'element' or 'path', got "
                             f"{path_normalization!r}")
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        irreps_in, irreps_out = self.irreps_in, self.irreps_out
        if instructions is None:
            instructions = [(i, o) for i, (_, a) in enumerate(irreps_in)
                            for o, (_, b) in enumerate(irreps_out) if a == b]
        pairs = []
        for k, ins in enumerate(instructions):
            i, o = ins
            if not 0 <= i < len(irreps_in):
                raise ValueError(f"instructions[{k}]: i_in={i} is not an index of irreps_in "
                                 f"{irreps_in}")
            if not 0 <= o < len(irreps_out):
                raise ValueError(f"instructions[{k}]: i_out={o} is not an index of irreps_out "
                                 f"{irreps_out}")
            if irreps_in[i].ir != irreps_out[o].ir:
                raise ValueError(f"instructions[{k}]: {irreps_in[i].ir} -> {irreps_out[o].ir}: "
                                 f"a linear map needs the same irrep on both sides")
            pairs.append((i, o))

        def alpha(i: int, o: int) -> float:
            x = sum(irreps_in[a if path_normalization == "element" else i].mul
                    for a, b in pairs if b == o)
            if f_in is not None:
                x *= f_in
            return (1.0 if x == 0 else x) ** -0.5

        self.instructions = [Instruction(i, o, (irreps_in[i].mul, irreps_out[o].mul), alpha(i, o))
                             for i, o in pairs]
        if biases is None:
            biases = [False] * len(irreps_out)
        if isinstance(biases, bool):
            biases = [biases and ir.is_scalar() for _, ir in irreps_out]
        biases = list(biases)
        if len(biases) != len(irreps_out):
            raise ValueError(f"biases: expected {len(irreps_out)} flags (one per output irrep), "
                             f"got {len(biases)}")
        for b, (_, ir) in zip(biases, irreps_out):
            if b and not ir.is_scalar():
                raise ValueError(f"biases: only scalar (0e) outputs can have a bias, not {ir}")
        self.instructions += [Instruction(-1, o, (mi.dim,), 1.0)
                              for o, (b, mi) in enumerate(zip(biases, irreps_out)) if b]
        if shared_weights is False and internal_weights is None:
            internal_weights = False
        shared_weights = True if shared_weights is None else shared_weights
        internal_weights = True if internal_weights is None else internal_weights
        if internal_weights and not shared_weights:
            raise ValueError("internal_weights=True requires shared_weights=True")
        self.internal_weights, self.shared_weights = bool(internal_weights), bool(shared_weights)
        self.f_in, self.f_out = f_in, f_out
        live = [ins for ins in self.instructions if 0 not in ins.path_shape]
        self.weight_numel = sum(prod(i.path_shape) for i in live if i.i_in != -1)
        self.bias_numel = sum(irreps_out[i.i_out].dim for i in self.instructions if i.i_in == -1)
        fshape = (f_in, f_out) if f_in is not None else ()
        if self.internal_weights and self.weight_numel > 0:
            self.weight = torch.nn.Parameter(torch.randn(*fshape, self.weight_numel))
        else:
            self.register_buffer("weight", torch.Tensor())
        if self.internal_weights and self.bias_numel > 0:
            self.bias = torch.nn.Parameter(
                torch.zeros(*((f_out,) if f_out is not None else ()), self.bias_numel))
        else:
            self.register_buffer("bias", torch.Tensor())
        mask = [float(any(i.i_out == o and 0 not in i.path_shape for i in self.instructions))
                for o in range(len(irreps_out))]
        self.register_buffer("output_mask", torch.cat(
            [torch.full((mi.dim,), m) for m, mi in zip(mask, irreps_out)])
            if irreps_out.dim > 0 else torch.ones(0))
        self._plan = self._make_plan()

    def _make_plan(self):
        """Per output block: its weighted instructions (with weight offsets) and its bias."""
        offsets, off = {}, 0
        for k, ins in enumerate(self.instructions):
            if ins.i_in != -1 and 0 not in ins.path_shape:
                offsets[k] = off
                off += prod(ins.path_shape)
        boff, b_offsets = 0, {}
        for k, ins in enumerate(self.instructions):
            if ins.i_in == -1:
                b_offsets[ins.i_out] = (boff, ins.path_weight)
                boff += self.irreps_out[ins.i_out].dim
        plan = []
        for o, (mul, ir) in enumerate(self.irreps_out):
            paths = [(k, ins) for k, ins in enumerate(self.instructions)
                     if ins.i_out == o and k in offsets and self.irreps_in[ins.i_in].dim > 0]
            plan.append((mul, ir.dim, [(self.irreps_in.slices()[ins.i_in], ins.path_shape[0],
                                        offsets[k], ins.path_weight) for k, ins in paths],
                         b_offsets.get(o)))
        return plan

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out} | " \
               f"{self.weight_numel} weights)"

    def forward(self, features: torch.Tensor, weight: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(..., [f_in,] irreps_in.dim)`` -> ``(..., [f_out,] irreps_out.dim)``."""
        fi = self.f_in
        lead = 1 if fi is None else 2
        want = (self.irreps_in.dim,) if fi is None else (fi, self.irreps_in.dim)
        if features.dim() < lead or tuple(features.shape[-lead:]) != want:
            raise ValueError(f"features: expected shape (..., {', '.join(map(str, want))}) for "
                             f"irreps {self.irreps_in}, got {tuple(features.shape)}")
        if weight is None:
            if self.weight_numel > 0 and not self.internal_weights:
                raise ValueError("weight: this Linear has no internal weights; pass a tensor of "
                                 f"shape (..., {self.weight_numel})")
            weight = self.weight
        if bias is None:
            if self.bias_numel > 0 and not self.internal_weights:
                raise ValueError(f"bias: this Linear has no internal biases; pass a tensor of "
                                 f"shape ({self.bias_numel},)")
            bias = self.bias
        fshape = () if fi is None else (fi, self.f_out)
        if self.weight_numel > 0:
            if self.shared_weights and tuple(weight.shape) != fshape + (self.weight_numel,):
                raise ValueError(f"weight: expected shape {fshape + (self.weight_numel,)}, got "
                                 f"{tuple(weight.shape)}")
            if not self.shared_weights and tuple(weight.shape[-1 - len(fshape):]) != \
                    fshape + (self.weight_numel,):
                raise ValueError(f"weight: expected shape (..., "
                                 f"{', '.join(map(str, fshape + (self.weight_numel,)))}), got "
                                 f"{tuple(weight.shape)}")
        batch = features.shape[:-lead]
        x = features.reshape((-1,) + want)
        n = x.shape[0]
        if not self.shared_weights and self.weight_numel > 0:
            weight = weight.expand(batch + weight.shape[-1 - len(fshape):]).reshape(
                (n,) + fshape + (self.weight_numel,))
        blocks = [self._block(x, weight, bias, n, *spec) for spec in self._plan]
        blocks = [b for b in blocks if b.shape[-1] > 0]
        out_f = () if fi is None else (self.f_out,)
        out = (torch.cat(blocks, -1) if len(blocks) > 1 else blocks[0]) if blocks else \
            x.new_zeros((n,) + out_f + (0,))
        return out.reshape(batch + out_f + (self.irreps_out.dim,))

    def _block(self, x, weight, bias, n, mul, d, paths, b_spec) -> torch.Tensor:
        fi, fo = self.f_in, self.f_out
        lead = (n,) if fi is None else (n, fo)
        if mul * d == 0:
            return x.new_zeros(lead + (0,))
        out = None
        if paths:
            xs = torch.cat([x.narrow(-1, sl.start, sl.stop - sl.start).reshape(
                x.shape[:-1] + (m, d)) for sl, m, _, _ in paths], dim=-2)
            ws = torch.cat([weight.narrow(-1, off, m * mul).reshape(
                weight.shape[:-1] + (m, mul)) * pw for _, m, off, pw in paths], dim=-2)
            z = "" if self.shared_weights else "z"
            eq = f"zui,{z}uw->zwi" if fi is None else f"zxui,{z}xyuw->zywi"
            out = torch.einsum(eq, xs, ws).reshape(lead + (mul * d,))
        if b_spec is not None:
            off, pw = b_spec
            b = bias.narrow(-1, off, mul * d) * pw
            out = b.expand(lead + (mul * d,)) if out is None else out + b
        if out is None:
            out = x.new_zeros(lead + (mul * d,))
        return out

    def weight_view_for_instruction(self, instruction: int,
                                    weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """View ``(..., *path_shape)`` of one instruction's weights."""
        if weight is None:
            if not self.internal_weights:
                raise ValueError("weight: required when internal_weights=False")
            weight = self.weight
        offset = sum(prod(i.path_shape) for i in self.instructions[:instruction])
        ins = self.instructions[instruction]
        return weight.narrow(-1, offset, prod(ins.path_shape)).view(
            weight.shape[:-1] + ins.path_shape)

    def weight_views(self, weight: Optional[torch.Tensor] = None,
                     yield_instruction: bool = False) -> Iterator:
        """Views of every instruction's weights (as e3nn: in instruction order)."""
        if weight is None:
            if not self.internal_weights:
                raise ValueError("weight: required when internal_weights=False")
            weight = self.weight
        offset = 0
        for k, ins in enumerate(self.instructions):
            n = prod(ins.path_shape)
            view = weight.narrow(-1, offset, n).view(weight.shape[:-1] + ins.path_shape)
            offset += n
            yield (k, ins, view) if yield_instruction else view
