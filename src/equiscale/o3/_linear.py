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
from equiscale.errors import InvalidArgumentError

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

    #: cost rule of ``forward`` (shared weights, no ``f_in``): the dense matrix while its wasted
    #: multiply-adds (``rows x (in_span x out_span - useful)``, the zeros off the irrep blocks and
    #: the ``kron`` with ``I_{2l+1}``) are at most this many per output block that the per-block
    #: path would run as its own chain of ~8 operations (forward; ~3x that with the backward).
    #: Measured break-even (1 thread, float32, 288 -> 352 dims, 3 blocks): ~160 rows.
    dense_waste_per_block: int = 4_000_000

    def __init__(self, irreps_in, irreps_out, *, f_in: Optional[int] = None,
                 f_out: Optional[int] = None, internal_weights: Optional[bool] = None,
                 shared_weights: Optional[bool] = None,
                 instructions: Optional[Sequence[Tuple[int, int]]] = None,
                 biases: Union[bool, List[bool]] = False, path_normalization: str = "element",
                 _optimize_einsums=None) -> None:
        super().__init__()
        if path_normalization not in ("element", "path"):
            raise InvalidArgumentError(f"path_normalization: expected 'element' or 'path', got "
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
                raise InvalidArgumentError(f"instructions[{k}]: i_in={i} is not an index of irreps_in "
                                           f"{irreps_in}")
            if not 0 <= o < len(irreps_out):
                raise InvalidArgumentError(f"instructions[{k}]: i_out={o} is not an index of irreps_out "
                                           f"{irreps_out}")
            if irreps_in[i].ir != irreps_out[o].ir:
                raise InvalidArgumentError(f"instructions[{k}]: {irreps_in[i].ir} -> {irreps_out[o].ir}: "
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
            raise InvalidArgumentError(f"biases: expected {len(irreps_out)} flags (one per output irrep), "
                                       f"got {len(biases)}")
        for b, (_, ir) in zip(biases, irreps_out):
            if b and not ir.is_scalar():
                raise InvalidArgumentError(f"biases: only scalar (0e) outputs can have a bias, not {ir}")
        self.instructions += [Instruction(-1, o, (mi.dim,), 1.0)
                              for o, (b, mi) in enumerate(zip(biases, irreps_out)) if b]
        if shared_weights is False and internal_weights is None:
            internal_weights = False
        shared_weights = True if shared_weights is None else shared_weights
        internal_weights = True if internal_weights is None else internal_weights
        if internal_weights and not shared_weights:
            raise InvalidArgumentError("internal_weights=True requires shared_weights=True")
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
        self._make_dense_plan()

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

    def _make_dense_plan(self) -> None:
        """Index tensors of the dense path: the ``(in_span, out_span)`` matrix of the live input and
        output columns is ``zeros.index_add(dst, weight[src] * coef)`` (each ``(mul_in, mul_out)``
        block ``kron``-ed with ``I_{2l+1}``, path weight folded in), applied with one ``addmm``."""
        self._dense = False
        if not self.shared_weights or self.f_in is not None or self.f_out is not None:
            return
        in_slices, out_slices = self.irreps_in.slices(), self.irreps_out.slices()
        src, coef, cols_in, cols_out = [], [], [], []
        off = 0
        for ins in self.instructions:
            if ins.i_in == -1 or 0 in ins.path_shape:
                continue
            mi, mo = ins.path_shape
            d = self.irreps_in[ins.i_in].ir.dim
            a, b = in_slices[ins.i_in].start, out_slices[ins.i_out].start
            u, w, m = torch.meshgrid(torch.arange(mi), torch.arange(mo), torch.arange(d),
                                     indexing="ij")
            src.append((off + u * mo + w).reshape(-1))
            cols_in.append((a + u * d + m).reshape(-1))
            cols_out.append((b + w * d + m).reshape(-1))
            coef.append(torch.full((mi * mo * d,), ins.path_weight, dtype=torch.float64))
            off += mi * mo
        bias_cols = []
        for ins in self.instructions:
            if ins.i_in == -1:
                sl = out_slices[ins.i_out]
                bias_cols.append(torch.arange(sl.start, sl.stop))
        if not src and not bias_cols:
            return
        live_in = torch.cat(cols_in) if cols_in else torch.zeros(0, dtype=torch.long)
        live_out = torch.cat(cols_out + bias_cols)
        lo_in, hi_in = (int(live_in.min()), int(live_in.max()) + 1) if live_in.numel() else (0, 0)
        lo_out, hi_out = int(live_out.min()), int(live_out.max()) + 1
        span_out = hi_out - lo_out
        if src:
            dst = (live_in - lo_in) * span_out + (torch.cat(cols_out) - lo_out)
            src, coef = torch.cat(src), torch.cat(coef)
        else:
            dst, src, coef = (torch.zeros(0, dtype=torch.long),) * 2 + (torch.zeros(0),)
        pw = coef.unique() if coef.numel() else torch.ones(1, dtype=torch.float64)
        # one path weight for all: a scalar, no coefficient tensor
        self._dense_alpha = float(pw[0]) if pw.numel() == 1 else 1.0
        bias_cols = torch.cat(bias_cols) - lo_out if bias_cols else torch.zeros(0, dtype=torch.long)
        # the bias as a row of the output span: padded when its columns are contiguous and in order
        nb = bias_cols.numel()
        contiguous = nb > 0 and bool((bias_cols == torch.arange(nb) + bias_cols[0]).all())
        self._dense_bias_pad = (int(bias_cols[0]), span_out - int(bias_cols[0]) - nb) \
            if contiguous else None
        # index and coefficient tensors, kept as CPU masters (coefficients in float64) and copied
        # once per device and dtype by _dense_tensors; not buffers, which DDP would broadcast and
        # the EMA copy every step, and which .float() would round
        self._dense_master = (src, dst, (hi_in - lo_in) * span_out, bias_cols, span_out,
                              coef if pw.numel() > 1 else None)
        self._dense_on: dict = {}
        self._dense_has_weights = src.numel() > 0
        self._dense_in = (lo_in, hi_in)
        self._dense_out = (lo_out, hi_out)
        self._dense_cache: Optional[tuple] = None
        # multiply-adds per row: dense minus useful (sum of mul_in * mul_out * (2l+1))
        self._dense_waste = (hi_in - lo_in) * span_out - int(src.numel())
        self._dense_blocks = sum(1 for _, _, paths, b in self._plan if paths or b is not None)
        self._dense = True

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
            raise InvalidArgumentError(f"features: expected shape (..., {', '.join(map(str, want))}) for "
                                       f"irreps {self.irreps_in}, got {tuple(features.shape)}")
        internal = weight is None and bias is None
        if weight is None:
            if self.weight_numel > 0 and not self.internal_weights:
                raise InvalidArgumentError("weight: this Linear has no internal weights; pass a tensor of "
                                           f"shape (..., {self.weight_numel})")
            weight = self.weight
        if bias is None:
            if self.bias_numel > 0 and not self.internal_weights:
                raise InvalidArgumentError(f"bias: this Linear has no internal biases; pass a tensor of "
                                           f"shape ({self.bias_numel},)")
            bias = self.bias
        fshape = () if fi is None else (fi, self.f_out)
        if self.weight_numel > 0:
            if self.shared_weights and tuple(weight.shape) != fshape + (self.weight_numel,):
                raise InvalidArgumentError(f"weight: expected shape {fshape + (self.weight_numel,)}, got "
                                           f"{tuple(weight.shape)}")
            if not self.shared_weights and tuple(weight.shape[-1 - len(fshape):]) != \
                    fshape + (self.weight_numel,):
                raise InvalidArgumentError(f"weight: expected shape (..., "
                                           f"{', '.join(map(str, fshape + (self.weight_numel,)))}), got "
                                           f"{tuple(weight.shape)}")
        batch = features.shape[:-lead]
        # (rows, dim) inputs are used as they are: no reshape (one aten op and autograd node less)
        x = features if features.dim() == lead + 1 else features.reshape((prod(batch),) + want)
        n = x.shape[0]
        if not self.shared_weights and self.weight_numel > 0:
            weight = weight.expand(batch + weight.shape[-1 - len(fshape):]).reshape(
                (n,) + fshape + (self.weight_numel,))
        if self._dense and self._use_dense(n):
            out = self._dense_forward(x, weight, bias, internal)
            return out if len(batch) == 1 else out.reshape(batch + (self.irreps_out.dim,))
        blocks = [self._block(x, weight, bias, n, *spec) for spec in self._plan]
        blocks = [b for b in blocks if b.shape[-1] > 0]
        out_f = () if fi is None else (self.f_out,)
        out = (torch.cat(blocks, -1) if len(blocks) > 1 else blocks[0]) if blocks else \
            x.new_zeros((n,) + out_f + (0,))
        return out.reshape(batch + out_f + (self.irreps_out.dim,))

    def _use_dense(self, n: int) -> bool:
        """The dense path (~5 operations) while its extra multiply-adds cost less than the
        per-block path's ~8 operations per output irrep; never under ``torch.compile``, which fuses
        the per-block path's small operations anyway (and would guard on the row count)."""
        if torch.compiler.is_compiling():
            return False
        return n * self._dense_waste <= self.dense_waste_per_block * self._dense_blocks

    def _dense_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       internal: bool) -> torch.Tensor:
        (lo_in, hi_in), (lo_out, hi_out) = self._dense_in, self._dense_out
        if lo_in > 0 or hi_in < x.shape[-1]:
            x = x[:, lo_in:hi_in]
        # the module's own parameters, no gradient wanted to them (inference, or frozen as in the
        # ASE calculator): the matrix is kept until a parameter changes (in place, replaced, moved)
        cache = internal and not (torch.is_grad_enabled() and (weight.requires_grad or
                                                               bias.requires_grad))
        key = None
        if cache:
            key = tuple((id(t), t._version, t.data_ptr(), t.dtype, t.device)
                        for t in (weight, bias)) + (torch.is_inference_mode_enabled(),)
            cached = self._dense_cache
            if cached is not None and cached[0] == key:
                w, b = cached[1], cached[2]
            else:
                w, b = self._dense_matrix(x, weight, bias)
                self._dense_cache = (key, w, b)
        else:
            w, b = self._dense_matrix(x, weight, bias)
        out = torch.addmm(b, x, w)
        if lo_out > 0 or hi_out < self.irreps_out.dim:
            out = torch.nn.functional.pad(out, (lo_out, self.irreps_out.dim - hi_out))
        return out

    def _dense_tensors(self, device: torch.device, dtype: torch.dtype) -> tuple:
        """``(src, dst, zeros, bias_cols, zero_row, coef)`` on this device and dtype (made once)."""
        found = self._dense_on.get((device, dtype))
        if found is None:
            src, dst, numel, bias_cols, span_out, coef = self._dense_master
            found = self._dense_on[(device, dtype)] = (
                src.to(device), dst.to(device), torch.zeros(numel, device=device, dtype=dtype),
                bias_cols.to(device), torch.zeros(span_out, device=device, dtype=dtype),
                None if coef is None else coef.to(device=device, dtype=dtype))
        return found

    def _dense_matrix(self, x: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``(in_span, out_span)`` matrix and the ``(out_span,)`` bias row of the dense path."""
        (lo_in, hi_in), (lo_out, hi_out) = self._dense_in, self._dense_out
        span_out = hi_out - lo_out
        if self._dense_has_weights:
            src, dst, zeros, _, _, coef = self._dense_tensors(weight.device, weight.dtype)
            vals = weight.index_select(0, src)
            # path weights on the weight branch (index_add's alpha, or a product), not on addmm,
            # where they would add a product to the input-gradient branch that forces go through
            if coef is not None:
                vals = vals * coef
            # out-of-place index_add: copy of the zeros + scatter (repeated paths add up); its
            # gradient is an index_select (faster than index_put with 2D indices, measured)
            w = zeros.index_add(0, dst, vals, alpha=self._dense_alpha).view(hi_in - lo_in, span_out)
        else:
            w = x.new_zeros(hi_in - lo_in, span_out)
        _, _, _, bias_cols, zero_row, _ = self._dense_tensors(x.device, x.dtype)
        if bias_cols.numel():
            pad = self._dense_bias_pad
            if pad is None:
                b = bias.new_zeros(span_out).index_put((bias_cols,), bias)
            elif pad != (0, 0):
                b = torch.nn.functional.pad(bias, pad)
            else:
                b = bias
        else:
            b = zero_row
        return w, b

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
                raise InvalidArgumentError("weight: required when internal_weights=False")
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
                raise InvalidArgumentError("weight: required when internal_weights=False")
            weight = self.weight
        offset = 0
        for k, ins in enumerate(self.instructions):
            n = prod(ins.path_shape)
            view = weight.narrow(-1, offset, n).view(weight.shape[:-1] + ins.path_shape)
            offset += n
            yield (k, ins, view) if yield_instruction else view
