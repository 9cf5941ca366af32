"""Fast kernels for tensor-product paths whose second input has multiplicity one.

These are the products that dominate equivariant networks: features ``x`` times the spherical
harmonics ``y`` of an edge, channelwise (``uvu``: NequIP/MACE convolutions; shared, per-edge or
no weights) or fully connected (``uvw`` with shared weights). The plan is in ``_tp_fast_plan``.

For each block ``g`` of ``x`` (``u`` channels of dimension ``d1``) and rows ``n``:

1. ``B[n, K, i] = sum_j y[n, j] C[j, K, i]``: one matrix product for all blocks contracts ``y``
   with the Clebsch-Gordan coefficients (times the path normalisation) of every path; ``K``
   concatenates the output components of the paths leaving the block.
2. ``S[n, K, u] = sum_i B[n, K, i] x[n, u, i]``: one batched product per block (a broadcast
   product if ``d1 = 1``), channel-last. ``R`` is all blocks' ``S`` side by side.
3. ``uvu``: one gather puts ``R`` in e3nn's ``mul_ir`` order and one product applies the
   weights (gathered alike); ``uvw``: per output irrep, the rows of its paths are stacked into
   ``T[n, k, (p, u)]`` and multiplied by the stacked weights ``W[(p, u), w]``.

The number of torch operations does not grow with the number of paths of a kind, only with the
number of ``x`` blocks and ``uvw`` outputs. Large batches run in a few chunks to bound memory;
nothing of size ``(N, ...)`` is kept for the backward pass but the inputs. ``fast_backward`` is
the hand-written adjoint; ``_tp_autograd`` makes every derivative order use these two kernels.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch._subclasses.fake_tensor import FakeTensor

from equiscale.o3._tp_fast_plan import FastPlan, build_fast_plan

__all__ = ["FastPlan", "build_fast_plan", "fast_constants", "fast_forward", "fast_backward"]

# floats of temporaries per chunk (about 128 MB in float32): a batch of 20,000 NequIP edges
# runs in about 4 chunks. Fewer, larger operations keep the thread pool efficient.
_CHUNK_ELEMENTS = 1 << 25


def fast_constants(plan: FastPlan, dtype: torch.dtype, device: torch.device) -> Dict:
    """The plan's coefficients and index tensors in ``dtype`` on ``device`` (cache the result)."""
    f = dict(dtype=dtype, device=device)
    groups = plan.groups
    return {"cy_fwd": [plan.cy_fwd[:, g.b_off:g.b_off + g.K * g.d1].contiguous().to(**f)
                       for g in groups],
            "cy_bwd": plan.cy_bwd.to(**f),
            "layers": [(p.to(device), w.to(device)) for p, w in plan.layers],
            "r_to_out": [plan.r_to_out[g.r_off:g.r_off + g.K * g.mul].to(device) for g in groups],
            "r_to_w": [plan.r_to_w[g.r_off:g.r_off + g.K * g.mul].to(device) for g in groups],
            "gw_index": plan.gw_index.to(device), "x_index": plan.x_index.to(device)}


def _s_blocks(plan: FastPlan, cy_fwd, xc, yc, want_s: bool = True):
    """``B`` (n, K, d1), ``x`` transposed (n, d1, u) and ``S`` (n, K, u) of every block.

    All contiguous: batched products on strided operands are up to twice slower.
    """
    n = xc.shape[0]
    bs, xts, ss = [], [], []
    for g, cy in zip(plan.groups, cy_fwd):
        b = (yc @ cy).view(n, g.K, g.d1)
        xt = xc.narrow(1, g.in_start, g.mul * g.d1).view(n, g.mul, g.d1).transpose(1, 2)
        xt = xt.contiguous()
        bs.append(b)
        xts.append(xt)
        if want_s:
            ss.append(b * xt if g.d1 == 1 else torch.bmm(b, xt))
    return bs, xts, ss


def _cat_rows(blocks: List[torch.Tensor], n: int, extra: Optional[float]) -> torch.Tensor:
    parts = [b.reshape(n, -1) for b in blocks]
    if extra is not None:
        parts.append(parts[0].new_full((n, 1), extra))
    return torch.cat(parts, 1) if len(parts) > 1 else parts[0]


def _w_ext(plan: FastPlan, w: Optional[torch.Tensor], like: torch.Tensor, n: int):
    """Weights with a trailing column of ones (the weight of unweighted uvu paths)."""
    if w is None:
        return like.new_ones(plan.weight_numel + 1)
    if plan.shared:
        return torch.cat([w, like.new_ones(1)])
    return torch.cat([w, like.new_ones(n, 1)], 1)


def _take_w(plan: FastPlan, w_ext: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return w_ext[index] if w_ext.dim() == 1 else torch.index_select(w_ext, 1, index)


def _stacked_weight(w: torch.Tensor, o, plan: FastPlan) -> torch.Tensor:
    """``W[(p, u), w]``: the (shared) weights of an output's uvw paths, stacked."""
    parts = [w.narrow(0, p.w_off, plan.groups[p.group].mul * o.mul_out).view(-1, o.mul_out)
             for p in o.paths]
    return parts[0] if len(parts) == 1 else torch.cat(parts, 0)


def _stack_t(o, ss: List[torch.Tensor], n: int) -> torch.Tensor:
    """``T[(n, k), (p, u)]``: the rows of an output's uvw paths, channels stacked."""
    if len(o.paths) == 1:
        p = o.paths[0]
        return ss[p.group].narrow(1, p.k0, p.k).reshape(n * p.k, -1)
    return torch.cat([ss[p.group].narrow(1, p.k0, p.k) for p in o.paths], 2).view(n * o.k, -1)


def _chunk(plan: FastPlan, x: torch.Tensor, n_all) -> int:
    """Rows per chunk; all rows at once when traced (a loop over a symbolic row count would fix it)."""
    if torch.compiler.is_compiling() or isinstance(x, FakeTensor):
        return n_all
    return plan.chunk_size(n_all, x.device, _CHUNK_ELEMENTS)


def fast_forward(plan: FastPlan, c: Dict, x1: torch.Tensor, x2: torch.Tensor,
                 weight: Optional[torch.Tensor]) -> torch.Tensor:
    """``(N, dim_out)`` sum of the planned paths (zero on output blocks they do not reach)."""
    n_all = x1.shape[0]
    out = x1.new_empty(n_all, plan.dim_out) if plan.any_uvu else x1.new_zeros(n_all, plan.dim_out)
    if n_all == 0:
        return out
    ws = [_stacked_weight(weight, o, plan) for o in plan.outputs]
    chunk = _chunk(plan, x1, n_all)
    for a in (0,) if chunk == n_all else range(0, n_all, chunk):  # one chunk: no loop over a traced size
        n = min(chunk, n_all - a)
        xc, yc, oc = x1.narrow(0, a, n), x2.narrow(0, a, n), out.narrow(0, a, n)
        wc = weight if (plan.shared or weight is None) else weight.narrow(0, a, n)
        _, _, ss = _s_blocks(plan, c["cy_fwd"], xc, yc)
        if plan.any_uvu:
            r_ext = _cat_rows(ss, n, 0.0)
            w_ext = _w_ext(plan, wc, x1, n)
            for j, (perm, widx) in enumerate(c["layers"]):
                r = torch.index_select(r_ext, 1, perm)
                if j == 0:
                    torch.mul(r, _take_w(plan, w_ext, widx), out=oc)
                else:
                    oc.addcmul_(r, _take_w(plan, w_ext, widx))
        for o, wm in zip(plan.outputs, ws):  # one product per output irrep
            r = torch.mm(_stack_t(o, ss, n), wm).view(n, o.k, o.mul_out).transpose(1, 2)
            dst = oc.narrow(1, o.out_start, o.k * o.mul_out).view(n, o.mul_out, o.k)
            dst.add_(r) if o.add else dst.copy_(r)
    return out


def fast_backward(plan: FastPlan, c: Dict, x1: torch.Tensor, x2: torch.Tensor,
                  weight: Optional[torch.Tensor], grad: torch.Tensor,
                  need: Tuple[bool, bool, bool]) -> Tuple[Optional[torch.Tensor], ...]:
    """Gradients of ``<grad, fast_forward(x1, x2, weight)>`` for the inputs flagged in ``need``.

    Same shapes as the inputs; shared weights get the batch sum; zero where no path reaches.
    """
    need_x, need_y = need[0], need[1]
    need_w = need[2] and weight is not None
    need_gs = need_x or need_y
    n_all = x1.shape[0]
    gx = x1.new_empty(x1.shape) if need_x else None
    gy = x2.new_empty(x2.shape) if need_y else None
    gw = None
    if need_w:
        gw = weight.new_zeros(weight.shape) if (plan.shared or not plan.segsums) else \
            weight.new_empty(weight.shape)
    if n_all == 0 or not (need_x or need_y or need_w):
        return (gx.zero_() if gx is not None else None, gy.zero_() if gy is not None else None,
                gw.zero_() if gw is not None else None)
    ws = [_stacked_weight(weight, o, plan) for o in plan.outputs]
    gws = [torch.zeros_like(wm) for wm in ws] if need_w else []
    gw_int = weight.new_zeros(plan.gw_width + 1) if (need_w and plan.shared) else None
    want_s = need_w and (bool(plan.segsums) or bool(plan.outputs))
    chunk = _chunk(plan, x1, n_all)
    for a in (0,) if chunk == n_all else range(0, n_all, chunk):  # one chunk: no loop over a traced size
        n = min(chunk, n_all - a)
        xc, yc, gc = x1.narrow(0, a, n), x2.narrow(0, a, n), grad.narrow(0, a, n)
        wc = weight if (plan.shared or weight is None) else weight.narrow(0, a, n)
        bs, xts, ss = _s_blocks(plan, c["cy_fwd"], xc, yc, want_s)
        gss = [None] * len(plan.groups)
        if plan.any_uvu:
            w_ext = _w_ext(plan, wc, x1, n) if need_gs else None
            prods = []
            for j, g in enumerate(plan.groups):
                gt = torch.index_select(gc, 1, c["r_to_out"][j])
                if need_w and plan.segsums:
                    prods.append(gt * ss[j].view(n, -1))
                if need_gs:
                    gss[j] = gt.mul_(_take_w(plan, w_ext, c["r_to_w"][j])).view(n, g.K, g.mul)
            if prods:
                _uvu_weight_grad(plan, prods, gw, gw_int, a, n, c["gw_index"])
        elif need_gs:
            gss = [x1.new_empty(n, g.K, g.mul) for g in plan.groups]
        for j, o in enumerate(plan.outputs):
            go = gc.narrow(1, o.out_start, o.k * o.mul_out).view(n, o.mul_out, o.k)
            go = go.transpose(1, 2).reshape(n * o.k, o.mul_out)
            if need_w:
                gws[j].addmm_(_stack_t(o, ss, n).t(), go)
            if need_gs:
                gtt = torch.mm(go, ws[j].t()).view(n, o.k, -1)
                col = 0
                for p in o.paths:
                    u = plan.groups[p.group].mul
                    gss[p.group].narrow(1, p.k0, p.k).copy_(gtt.narrow(2, col, u))
                    col += u
        if need_gs:
            _input_grads(plan, c, xts, bs, gss, gx, gy, a, n, need_x, need_y)
    if need_w and plan.shared and plan.segsums:
        gw += gw_int[c["gw_index"]]
    for o, gwm in zip(plan.outputs, gws):
        col = 0
        for p in o.paths:
            rows = plan.groups[p.group].mul
            gw.narrow(0, p.w_off, rows * o.mul_out).add_(gwm.narrow(0, col, rows).reshape(-1))
            col += rows
    return gx, gy, gw


def _uvu_weight_grad(plan, prods, gw, gw_int, a, n, gw_index) -> None:
    """Sum ``grad * S`` over each weighted uvu path's ``k`` components into ``gw``."""
    if plan.shared:
        prods = [p.sum(0) for p in prods]
        for s in plan.segsums:
            gw_int.narrow(0, s.gw0, s.npath * s.u).view(s.npath, s.u).add_(
                prods[s.group].narrow(0, s.r0, s.npath * s.k * s.u).view(s.npath, s.k, s.u)
                .sum(1))
        return
    buf = prods[0].new_empty(n, plan.gw_width + 1)
    buf[:, -1] = 0
    for s in plan.segsums:
        src = prods[s.group].narrow(1, s.r0, s.npath * s.k * s.u).view(n, s.npath, s.k, s.u)
        target = buf.narrow(1, s.gw0, s.npath * s.u).view(n, s.npath, s.u)
        if torch.compiler.is_compiling():  # dynamo refuses out= into a non-contiguous view
            target.copy_(src.sum(2))
        else:
            torch.sum(src, 2, out=target)
    torch.index_select(buf, 1, gw_index, out=gw.narrow(0, a, n))


def _input_grads(plan, c, xts, bs, gss, gx, gy, a, n, need_x, need_y) -> None:
    """``gx`` and ``gy`` of one chunk from ``GS``, the gradient w.r.t. each block's ``S``."""
    gxs, gbs = [], []
    for b, xt, gs in zip(bs, xts, gss):
        if need_x:  # gx[n, i, u] = sum_K B[n, K, i] GS[n, K, u]
            gxs.append(torch.bmm(b.transpose(1, 2), gs))
        if need_y:  # gB[n, i, K] = sum_u x[n, i, u] GS[n, K, u]
            gbs.append(torch.bmm(xt, gs.transpose(1, 2)))
    if need_x:
        torch.index_select(_cat_rows(gxs, n, 0.0), 1, c["x_index"], out=gx.narrow(0, a, n))
    if need_y:
        torch.mm(_cat_rows(gbs, n, None), c["cy_bwd"], out=gy.narrow(0, a, n))
