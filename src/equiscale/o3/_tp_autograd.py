"""Autograd for the fast tensor-product kernels, to any derivative order.

The product ``T(x, y, w)`` is trilinear. Its gradient with respect to one argument is again a
trilinear function of the other two and of the output gradient ``g``:

    T_x(g, y, w) = d<g, T(x, y, w)>/dx,  T_y(x, g, w),  T_w(x, y, g)

and the derivatives of ``(T_x, T_y, T_w)`` are sums of ``T``, ``T_x``, ``T_y`` and ``T_w`` with
permuted arguments. ``_Forward`` computes ``T`` with ``fast_forward``; its backward calls
``_Backward``, which computes the requested ``T_*`` with ``fast_backward`` and whose own backward
is written with ``_Forward``/``_Backward`` again. Double backward (forces trained through a
potential) therefore runs the same fast kernels.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from equiscale.o3._tp_fast import FastPlan, fast_backward, fast_forward

__all__ = ["fast_tensor_product"]


def _add(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class _Forward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, w, plan, consts):
        ctx.plan, ctx.consts = plan, consts
        ctx.save_for_backward(x, y, w)
        with torch.no_grad():
            return fast_forward(plan, consts, x, y, w)

    @staticmethod
    def backward(ctx, g):
        x, y, w = ctx.saved_tensors
        need = tuple(ctx.needs_input_grad[:3])
        if w is None:
            need = (need[0], need[1], False)
        grads = _backward(ctx.plan, ctx.consts, x, y, w, g, need)
        return grads[0], grads[1], grads[2], None, None


def _forward(plan: FastPlan, consts: Dict, x, y, w) -> torch.Tensor:
    return _Forward.apply(x, y, w, plan, consts)


def _backward(plan: FastPlan, consts: Dict, x, y, w, g,
              need: Tuple[bool, bool, bool]) -> Tuple[Optional[torch.Tensor], ...]:
    """``(T_x, T_y, T_w)`` at ``(x, y, w, g)``, ``None`` where not in ``need``."""
    if not any(need):
        return None, None, None
    outs = _Backward.apply(x, y, w, g, plan, consts, need)
    it = iter(outs)
    return tuple(next(it) if flag else None for flag in need)


class _Backward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, w, g, plan, consts, need):
        ctx.plan, ctx.consts, ctx.need = plan, consts, need
        ctx.save_for_backward(x, y, w, g)
        with torch.no_grad():
            gx, gy, gw = fast_backward(plan, consts, x, y, w, g, need)
        return tuple(t for t, flag in zip((gx, gy, gw), need) if flag)

    @staticmethod
    def backward(ctx, *grads):
        x, y, w, g = ctx.saved_tensors
        plan, consts = ctx.plan, ctx.consts
        it = iter(grads)
        a, b, c = (next(it) if flag else None for flag in ctx.need)  # grads of gx, gy, gw
        nx, ny, nw, ng = ctx.needs_input_grad[:4]
        dx = dy = dw = dg = None
        # gx = T_x(g, y, w): linear in g, y, w.  gy = T_y(x, g, w).  gw = T_w(x, y, g).
        if ng:  # <a, T_x(g,y,w)> + <b, T_y(x,g,w)> + <c, T_w(x,y,g)> = <g, T(a,y,w) + ...>
            if a is not None:
                dg = _add(dg, _forward(plan, consts, a, y, w))
            if b is not None:
                dg = _add(dg, _forward(plan, consts, x, b, w))
            if c is not None:
                dg = _add(dg, _forward(plan, consts, x, y, c))
        if nx:  # from <g, T(x, b, w)> and <g, T(x, y, c)>
            if b is not None:
                dx = _add(dx, _backward(plan, consts, x, b, w, g, (True, False, False))[0])
            if c is not None:
                dx = _add(dx, _backward(plan, consts, x, y, c, g, (True, False, False))[0])
        if ny:  # from <g, T(a, y, w)> and <g, T(x, y, c)>
            if a is not None:
                dy = _add(dy, _backward(plan, consts, a, y, w, g, (False, True, False))[1])
            if c is not None:
                dy = _add(dy, _backward(plan, consts, x, y, c, g, (False, True, False))[1])
        if nw and w is not None:  # from <g, T(a, y, w)> and <g, T(x, b, w)>
            if a is not None:
                dw = _add(dw, _backward(plan, consts, a, y, w, g, (False, False, True))[2])
            if b is not None:
                dw = _add(dw, _backward(plan, consts, x, b, w, g, (False, False, True))[2])
        return dx, dy, dw, dg, None, None, None


def fast_tensor_product(plan: FastPlan, consts: Dict, x: torch.Tensor, y: torch.Tensor,
                        w: Optional[torch.Tensor]) -> torch.Tensor:
    """``(N, dim_out)`` product of the planned paths, differentiable to any order.

    ``consts``: ``fast_constants(plan, x.dtype, x.device)``.

    ``x (N, dim1)``, ``y (N, dim2)``, ``w`` ``(weight_numel,)`` when the plan's weights are shared,
    ``(N, weight_numel)`` otherwise, or ``None`` when no planned path has a weight.
    """
    return _Forward.apply(x, y, w, plan, consts)
