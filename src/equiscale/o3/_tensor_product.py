"""``TensorProduct``: e3nn 0.6's weighted Clebsch-Gordan tensor product, same API, faster kernels.

Arguments, defaults, normalisations, instruction list, weight layout and state-dict keys
(``weight``, ``output_mask``) are e3nn's, so a model written against ``e3nn.o3`` runs unchanged
and loads e3nn state dicts. On CPU, a product made only of shared-weight ``uvw`` paths
(``FullyConnectedTensorProduct``) runs on the compiled kernel of
:mod:`equiscale._kernels.tensor_product`, and one made only of weighted ``uvu`` paths with
per-sample weights (``shared_weights=False``) and second-input multiplicity one (NequIP's
convolution) on the channelwise kernel of :mod:`equiscale._kernels.message_passing`
(``uvu_scatter`` with each row its own edge, ``edge_index = (arange(n), arange(n))``).
Otherwise (and without a compiler, or with ``EQUISCALE_KERNELS=off``) paths whose second input
has multiplicity one (``uvu``, and ``uvw`` with shared weights) run on the chunked kernels of
``_tp_fast`` (any derivative order); every other path runs on the autograd reference kernel of
``_tp_generic``.
"""
from __future__ import annotations

from math import prod, sqrt
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

import torch

from equiscale import _kernels
from equiscale._kernels import message_passing as _mp_kernel
from equiscale._kernels import tensor_product as _tp_kernel
from equiscale.o3._tp_compiled import uvu_metadata, uvw_plan
from equiscale.o3._irreps import Irreps
from equiscale.o3._tp_autograd import fast_tensor_product
from equiscale.o3._tp_compat import e3nn_constants
from equiscale.o3._tp_fast import build_fast_plan, fast_constants
from equiscale.o3._tp_generic import GenericPath, generic_tensor_product
from equiscale.o3._wigner import wigner_3j
from equiscale.errors import InvalidArgumentError

__all__ = ["Instruction", "TensorProduct"]

_MODES = ("uvw", "uvu", "uvv", "uuw", "uuu", "uvuv", "uvu<v", "u<vw")


class Instruction(NamedTuple):
    """One path ``in1[i_in1] (x) in2[i_in2] -> out[i_out]`` (e3nn's namedtuple, same fields).

    After construction ``path_weight`` holds the full normalisation constant of the path.
    """

    i_in1: int
    i_in2: int
    i_out: int
    connection_mode: str
    has_weight: bool
    path_weight: float
    path_shape: tuple


def _path_shape(mode: str, m1: int, m2: int, mo: int) -> tuple:
    return {"uvw": (m1, m2, mo), "uvu": (m1, m2), "uvv": (m1, m2), "uuw": (m1, mo), "uuu": (m1,),
            "uvuv": (m1, m2), "uvu<v": (m1 * (m2 - 1) // 2,),
            "u<vw": (m1 * (m2 - 1) // 2, mo)}[mode]


def _num_elements(mode: str, m1: int, m2: int) -> int:
    return {"uvw": m1 * m2, "uvu": m2, "uvv": m1, "uuw": m1, "uuu": 1, "uvuv": 1, "uvu<v": 1,
            "u<vw": m1 * (m2 - 1) // 2}[mode]


def _check_mode(idx: int, mode: str, m1: int, m2: int, mo: int, has_weight: bool) -> None:
    rules = {"uvu": (m1 == mo, "mul_in1 == mul_out"), "uvv": (m2 == mo, "mul_in2 == mul_out"),
             "uuu": (m1 == m2 == mo, "mul_in1 == mul_in2 == mul_out"),
             "uuw": (m1 == m2 and (has_weight or mo == 1),
                     "mul_in1 == mul_in2 (and mul_out == 1 without weights)"),
             "uvuv": (m1 * m2 == mo, "mul_in1 * mul_in2 == mul_out"),
             "uvu<v": (m1 == m2 and m1 * (m1 - 1) // 2 == mo,
                       "mul_in1 == mul_in2 and mul_out == mul(mul-1)/2"),
             "u<vw": (m1 == m2 and has_weight, "mul_in1 == mul_in2 and weights"),
             "uvw": (has_weight, "weights (has_weight=True)")}
    ok, what = rules[mode]
    if not ok:
        raise InvalidArgumentError(f"instructions[{idx}]: mode {mode!r} needs {what}; got multiplicities "
                                   f"({m1}, {m2}) -> {mo}, has_weight={has_weight}")


def _variances(name: str, var, n: int) -> List[float]:
    if var is None:
        return [1.0] * n
    var = [float(v) for v in var]
    if len(var) != n:
        raise InvalidArgumentError(f"{name}: expected {n} variances (one per irrep), got {len(var)}")
    return var


class TensorProduct(torch.nn.Module):
    r"""Tensor product with parametrised paths, ``out = sum_paths w x (x) y``, as ``e3nn.o3``.

    ``instructions``: tuples ``(i_in1, i_in2, i_out, mode, has_weight[, path_weight])``; ``mode``
    is one of ``uvw uvu uvv uuw uuu uvuv uvu<v u<vw``. ``irrep_normalization`` in
    ``component`` (default), ``norm``, ``none``; ``path_normalization`` in ``element``
    (default), ``path``, ``none``. Weights are one flat vector, the instructions' ``path_shape``
    blocks in order: ``(weight_numel,)`` when shared, ``(..., weight_numel)`` per sample.

    ``forward(x (..., irreps_in1.dim), y (..., irreps_in2.dim), weight=None)`` returns
    ``(..., irreps_out.dim)``; leading dimensions broadcast (with the weight's when not shared).
    float64 inputs give float64-accurate results (with float64 weights).
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out, instructions: Sequence[tuple],
                 in1_var=None, in2_var=None, out_var=None,
                 irrep_normalization: Optional[str] = None,
                 path_normalization: Optional[str] = None,
                 internal_weights: Optional[bool] = None, shared_weights: Optional[bool] = None,
                 compile_left_right: bool = True, compile_right: bool = False,
                 normalization: Optional[str] = None, _specialized_code=None,
                 _optimize_einsums=None) -> None:
        super().__init__()
        if normalization is not None and irrep_normalization is None:
            irrep_normalization = normalization
        irrep_normalization = irrep_normalization or "component"
        path_normalization = path_normalization or "element"
        if irrep_normalization not in ("component", "norm", "none"):
            raise InvalidArgumentError("irrep_normalization: expected 'component', 'norm' or 'none', got "
                                       f"{irrep_normalization!r}")
        if path_normalization not in ("element", "path", "none"):
            raise InvalidArgumentError("path_normalization: expected 'element', 'path' or 'none', got "
                                       f"{path_normalization!r}")
        self.irreps_in1, self.irreps_in2 = Irreps(irreps_in1), Irreps(irreps_in2)
        self.irreps_out = Irreps(irreps_out)
        self.irrep_normalization, self.path_normalization = irrep_normalization, path_normalization
        raw = self._parse_instructions(instructions)
        v1 = _variances("in1_var", in1_var, len(self.irreps_in1))
        v2 = _variances("in2_var", in2_var, len(self.irreps_in2))
        vo = _variances("out_var", out_var, len(self.irreps_out))
        self.instructions = [ins._replace(path_weight=self._alpha(ins, raw, v1, v2, vo))
                             for ins in raw]
        if shared_weights is False and internal_weights is None:
            internal_weights = False
        if shared_weights is None:
            shared_weights = True
        if internal_weights is None:
            internal_weights = shared_weights and any(i.has_weight for i in self.instructions)
        if internal_weights and not shared_weights:
            raise InvalidArgumentError("internal_weights=True requires shared_weights=True")
        self.internal_weights, self.shared_weights = bool(internal_weights), bool(shared_weights)
        self.weight_numel = sum(prod(i.path_shape) for i in self.instructions if i.has_weight)
        if self.internal_weights and self.weight_numel > 0:
            self.weight = torch.nn.Parameter(torch.randn(self.weight_numel))
        else:
            self.register_buffer("weight", torch.Tensor())
        mask = [float(any(i.i_out == o and i.path_weight != 0 and 0 not in i.path_shape
                          for i in self.instructions)) for o in range(len(self.irreps_out))]
        self.register_buffer("output_mask", torch.cat(
            [torch.full((mi.dim,), m) for m, mi in zip(mask, self.irreps_out)])
            if self.irreps_out.dim > 0 else torch.ones(0))
        # same state-dict keys as e3nn (its 3j buffers); the kernels do not read them
        self._compiled_main_left_right = e3nn_constants(self.irreps_in1, self.irreps_in2,
                                                        self.irreps_out, self.instructions)
        self._build_kernels()

    # ------------------------------------------------------------------ construction
    def _parse_instructions(self, instructions) -> List[Instruction]:
        out = []
        for idx, ins in enumerate(instructions):
            ins = tuple(ins)
            if len(ins) not in (5, 6):
                raise InvalidArgumentError(f"instructions[{idx}]: expected (i_in1, i_in2, i_out, mode, "
                                           f"has_weight[, path_weight]), got {ins!r}")
            i1, i2, io, mode, has_weight = ins[:5]
            pw = float(ins[5]) if len(ins) == 6 else 1.0
            for name, i, irreps in (("i_in1", i1, self.irreps_in1), ("i_in2", i2, self.irreps_in2),
                                    ("i_out", io, self.irreps_out)):
                if not 0 <= i < len(irreps):
                    raise InvalidArgumentError(f"instructions[{idx}]: {name}={i} is not an index of "
                                               f"irreps {irreps} (expected 0 <= {name} < {len(irreps)})")
            if mode not in _MODES:
                raise InvalidArgumentError(f"instructions[{idx}]: unknown mode {mode!r}, expected one of "
                                           f"{_MODES}")
            (m1, ir1), (m2, ir2), (mo, iro) = (self.irreps_in1[i1], self.irreps_in2[i2],
                                               self.irreps_out[io])
            if ir1.p * ir2.p != iro.p or not abs(ir1.l - ir2.l) <= iro.l <= ir1.l + ir2.l:
                raise InvalidArgumentError(f"instructions[{idx}]: {ir1} x {ir2} -> {iro} violates the "
                                           f"selection rules (|l1 - l2| <= l_out <= l1 + l2, p1 p2 = p_out)")
            _check_mode(idx, mode, m1, m2, mo, bool(has_weight))
            out.append(Instruction(i1, i2, io, mode, bool(has_weight), pw,
                                   _path_shape(mode, m1, m2, mo)))
        return out

    def _alpha(self, ins: Instruction, raw: List[Instruction], v1, v2, vo) -> float:
        """Normalisation constant of one path, as e3nn 0.6 computes it."""
        ir1, ir2 = self.irreps_in1[ins.i_in1].ir, self.irreps_in2[ins.i_in2].ir
        iro = self.irreps_out[ins.i_out].ir
        alpha = {"component": iro.dim, "norm": ir1.dim * ir2.dim, "none": 1}[
            self.irrep_normalization]

        def n_el(i):
            return _num_elements(i.connection_mode, self.irreps_in1[i.i_in1].mul,
                                 self.irreps_in2[i.i_in2].mul)

        if self.path_normalization == "element":
            x = sum(v1[i.i_in1] * v2[i.i_in2] * n_el(i) for i in raw if i.i_out == ins.i_out)
        elif self.path_normalization == "path":
            x = v1[ins.i_in1] * v2[ins.i_in2] * n_el(ins)
            x *= len([i for i in raw if i.i_out == ins.i_out])
        else:
            x = 1
        if x > 0.0:
            alpha /= x
        alpha *= vo[ins.i_out] * ins.path_weight
        return sqrt(alpha)

    def _fast_ok(self, ins: Instruction) -> bool:
        m1, m2, mo = (self.irreps_in1[ins.i_in1].mul, self.irreps_in2[ins.i_in2].mul,
                      self.irreps_out[ins.i_out].mul)
        if m2 != 1 or m1 == 0 or mo == 0:
            return False
        return ins.connection_mode == "uvu" or (ins.connection_mode == "uvw" and ins.has_weight
                                                and self.shared_weights)

    def _build_kernels(self) -> None:
        offsets, off = [], 0
        for ins in self.instructions:
            offsets.append(off)
            off += prod(ins.path_shape) if ins.has_weight else 0
        live = [(k, ins) for k, ins in enumerate(self.instructions) if 0 not in ins.path_shape
                and self.irreps_in1[ins.i_in1].dim and self.irreps_in2[ins.i_in2].dim
                and self.irreps_out[ins.i_out].dim]
        cg: Dict = {}
        for _, ins in live:
            key = (self.irreps_in1[ins.i_in1].ir.l, self.irreps_in2[ins.i_in2].ir.l,
                   self.irreps_out[ins.i_out].ir.l)
            if key not in cg:
                cg[key] = wigner_3j(*key, dtype=torch.float64)
        fast = [(k, ins) for k, ins in live if self._fast_ok(ins)]
        slow = [(k, ins) for k, ins in live if not self._fast_ok(ins)]
        self._fast_plan = build_fast_plan(
            self.irreps_in1, self.irreps_in2, self.irreps_out, [ins for _, ins in fast],
            self.shared_weights, [offsets[k] for k, _ in fast], self.weight_numel, cg)
        self._fast_uses_weights = any(ins.has_weight for _, ins in fast)
        s1, s2, so = self.irreps_in1.slices(), self.irreps_in2.slices(), self.irreps_out.slices()
        self._generic_paths = []
        for k, ins in slow:
            (m1, ir1), (m2, ir2), (mo, iro) = (self.irreps_in1[ins.i_in1],
                                               self.irreps_in2[ins.i_in2],
                                               self.irreps_out[ins.i_out])
            self._generic_paths.append(GenericPath(
                ins.connection_mode, (s1[ins.i_in1].start, m1, ir1.dim),
                (s2[ins.i_in2].start, m2, ir2.dim), (so[ins.i_out].start, mo, iro.dim), ins.i_out,
                (offsets[k], ins.path_shape) if ins.has_weight else None,
                cg[(ir1.l, ir2.l, iro.l)] * ins.path_weight))
        self._out_blocks = [(mul, ir.dim) for mul, ir in self.irreps_out]
        paths = [(k, ins.i_in1, ins.i_in2, ins.i_out, ins.connection_mode, ins.has_weight, ins.path_weight)
                 for k, ins in live]
        self._uvw_plan = uvw_plan(self.irreps_in1, self.irreps_in2, self.irreps_out, paths, offsets, cg,
                                  self.shared_weights)
        self._uvu_metadata = uvu_metadata(self.irreps_in1, self.irreps_in2, self.irreps_out, paths, offsets, cg,
                                          self.shared_weights)
        self._cache: Dict = {}  # coefficients cast per (dtype, device); memory only
        self._constants(torch.get_default_dtype(), torch.device("cpu"))

    def _constants(self, dtype: torch.dtype, device: torch.device):
        """(fast kernel constants, generic kernel coefficients) in ``dtype`` on ``device``."""
        key = (dtype, device)
        c = self._cache.get(key)
        if c is None:
            c = (fast_constants(self._fast_plan, dtype, device) if self._fast_plan else None,
                 [p.cg.to(dtype=dtype, device=device) for p in self._generic_paths])
            self._cache[key] = c
        return c

    # ------------------------------------------------------------------ forward
    def __repr__(self) -> str:
        npath = sum(prod(i.path_shape) for i in self.instructions)
        return (f"{self.__class__.__name__}({self.irreps_in1.simplify()} x "
                f"{self.irreps_in2.simplify()} -> {self.irreps_out.simplify()} | {npath} paths | "
                f"{self.weight_numel} weights)")

    def _get_weights(self, weight) -> torch.Tensor:
        if isinstance(weight, (list, tuple)):
            shapes = [i.path_shape for i in self.instructions if i.has_weight]
            if self.shared_weights:
                weight = torch.cat([w.reshape(prod(s)) for w, s in zip(weight, shapes)], dim=-1)
            else:
                weight = torch.cat([w.reshape(w.shape[:w.dim() - len(s)] + (prod(s),))
                                    for w, s in zip(weight, shapes)], dim=-1)
        if weight is None:
            if self.weight_numel > 0 and not self.internal_weights:
                raise InvalidArgumentError(f"weight: this TensorProduct has no internal weights; pass a "
                                           f"tensor of shape {self._weight_shape_text()}")
            return self.weight
        if self.shared_weights:
            if tuple(weight.shape) != (self.weight_numel,):
                raise InvalidArgumentError(f"weight: expected shape {self._weight_shape_text()}, got "
                                           f"{tuple(weight.shape)}")
        elif weight.dim() < 2 or weight.shape[-1] != self.weight_numel:
            raise InvalidArgumentError(f"weight: expected shape {self._weight_shape_text()}, got "
                                       f"{tuple(weight.shape)}")
        return weight

    def _weight_shape_text(self) -> str:
        return (f"({self.weight_numel},)" if self.shared_weights
                else f"(..., {self.weight_numel})")

    def forward(self, x: torch.Tensor, y: torch.Tensor,
                weight: Optional[Union[torch.Tensor, List[torch.Tensor]]] = None) -> torch.Tensor:
        """``x (..., irreps_in1.dim)``, ``y (..., irreps_in2.dim)`` -> ``(..., irreps_out.dim)``."""
        d1, d2 = self.irreps_in1.dim, self.irreps_in2.dim
        if x.dim() < 1 or x.shape[-1] != d1:
            raise InvalidArgumentError(f"x: expected shape (..., {d1}) for irreps {self.irreps_in1}, got "
                                       f"{tuple(x.shape)}")
        if y.dim() < 1 or y.shape[-1] != d2:
            raise InvalidArgumentError(f"y: expected shape (..., {d2}) for irreps {self.irreps_in2}, got "
                                       f"{tuple(y.shape)}")
        if x.dtype != y.dtype:
            raise InvalidArgumentError(f"y: dtype {y.dtype} differs from x's {x.dtype}")
        w = self._get_weights(weight)
        if self.weight_numel > 0 and w.dtype != x.dtype:
            raise InvalidArgumentError(f"weight: dtype {w.dtype} differs from the inputs' {x.dtype} "
                                       f"(convert the module with .to({x.dtype}) or pass weights)")
        shapes = [x.shape[:-1], y.shape[:-1]]
        if not self.shared_weights:
            shapes.append(w.shape[:-1])
        try:
            batch = torch.broadcast_shapes(*shapes)
        except RuntimeError:
            raise InvalidArgumentError(f"x {tuple(x.shape)}, y {tuple(y.shape)}"
                                       + ("" if self.shared_weights else f" and weight {tuple(w.shape)}")
                                       + ": leading dimensions do not broadcast") from None
        n = prod(batch)  # not reshape(-1, d): ambiguous when d == 0 (an empty irreps)
        x2d = x.expand(batch + (d1,)).reshape(n, d1)
        y2d = y.expand(batch + (d2,)).reshape(n, d2)
        if not self.shared_weights:
            w = w.expand(batch + (self.weight_numel,)).reshape(n, self.weight_numel)
        if (self._uvw_plan is not None and x.dtype in (torch.float32, torch.float64)
                and _kernels.use_kernels(x2d, y2d, w)):
            out = _tp_kernel.tensor_product_uvw(self._uvw_plan, x2d, y2d, w)
            return out.reshape(batch + (self.irreps_out.dim,))
        if (self._uvu_metadata is not None and x.dtype in (torch.float32, torch.float64)
                and _kernels.use_kernels(x2d, y2d, w)):
            n = x2d.shape[0]  # each row its own edge: source = target = row
            rows = torch.arange(n, device=x2d.device).expand(2, n)
            out = _mp_kernel.uvu_scatter(x2d, y2d, w, rows, n, self.irreps_out.dim, self._uvu_metadata)
            return out.reshape(batch + (self.irreps_out.dim,))
        out = None
        fast_c, generic_c = self._constants(x.dtype, x.device)
        if self._fast_plan is not None:
            out = fast_tensor_product(self._fast_plan, fast_c, x2d, y2d,
                                      w if self._fast_uses_weights else None)
        if self._generic_paths:
            g = generic_tensor_product(self._generic_paths, self._out_blocks, x2d, y2d, w,
                                       self.shared_weights, generic_c)
            out = g if out is None else out + g
        if out is None:
            out = x2d.new_zeros(x2d.shape[0], self.irreps_out.dim)
        return out.reshape(batch + (self.irreps_out.dim,))

    def right(self, y: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Operator ``(..., irreps_in1.dim, irreps_out.dim)`` with ``out = x @ right(y)``."""
        eye = torch.eye(self.irreps_in1.dim, dtype=y.dtype, device=y.device)
        if weight is not None and not self.shared_weights and not isinstance(weight, list):
            weight = weight.unsqueeze(-2)
        return self.forward(eye, y.unsqueeze(-2), weight)

    # ------------------------------------------------------------------ weight views
    def weight_view_for_instruction(self, instruction: int,
                                    weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """View ``(..., *path_shape)`` of the weights of one instruction."""
        if not self.instructions[instruction].has_weight:
            raise InvalidArgumentError(f"instruction: instruction {instruction} has no weights")
        offset = sum(prod(i.path_shape) for i in self.instructions[:instruction] if i.has_weight)
        ins = self.instructions[instruction]
        weight = self._get_weights(weight)
        batch = weight.shape[:-1]
        return weight.narrow(-1, offset, prod(ins.path_shape)).view(batch + ins.path_shape)

    def weight_views(self, weight: Optional[torch.Tensor] = None,
                     yield_instruction: bool = False) -> Iterator:
        """Views of the weights of every weighted instruction (with ``(index, ins)`` if asked)."""
        weight = self._get_weights(weight)
        batch, offset = weight.shape[:-1], 0
        for k, ins in enumerate(self.instructions):
            if ins.has_weight:
                n = prod(ins.path_shape)
                view = weight.narrow(-1, offset, n).view(batch + ins.path_shape)
                offset += n
                yield (k, ins, view) if yield_instruction else view
