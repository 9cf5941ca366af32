"""Python side of the fused message-passing kernel (``csrc/message_passing.cpp``).

``torch.ops.equiscale.uvu_scatter`` computes, for channelwise (``uvu``) paths with per-edge
weights and spherical-harmonic edge attributes,

    out[n] = sum_{e : target(e) = n} TP(x[source(e)], Y[e], w[e])

in e3nn's ``mul_ir`` layout, without any per-edge intermediate; ``uvu_scatter_backward`` gives the
gradients to ``x``, ``Y`` and ``w`` in one pass over the edges grouped by source. This module
registers their fake (shape-only) implementations, for ``torch.compile`` and ``torch.export``, and
their autograd formulas. The map is linear in each of ``x``, ``Y``, ``w`` and in the output
cotangent ``g``, so every derivative is again a sum of ``uvu_scatter`` and
``uvu_scatter_backward`` calls with some arguments replaced by cotangents: derivatives of any order
run through the same two kernels. The double backward that training on forces needs (when no
third derivative is asked for) runs as ``uvu_scatter_double_backward``, which sums those terms in
one pass by target and one by source.

The metadata tensors (``paths``, ``in_blocks``, ``cg_index``, ``cg_value``) are built by
:class:`equiscale.nn.points.fused.GatherTensorProductScatter`; see the C++ file for their layout.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

__all__ = ["register", "uvu_scatter"]

Metadata = Sequence[torch.Tensor]  # (paths, in_blocks, cg_index, cg_value)


def uvu_scatter(x: torch.Tensor, edge_attr: torch.Tensor, weight: torch.Tensor, edge_index: torch.Tensor, num_nodes: int,
                dim_out: int, metadata: Metadata) -> torch.Tensor:
    """``(num_nodes, dim_out)`` messages summed at the targets (the compiled kernel; CPU tensors).

    Args:
        x: node features ``(num_nodes, dim_in)``, ``mul_ir`` layout.
        edge_attr: spherical harmonics ``(E, dim_sh)``.
        weight: per-edge path weights ``(E, weight_numel)``.
        edge_index: ``(2, E)`` ``[source, target]``, int64.
        num_nodes, dim_out: the output's shape.
        metadata: ``(paths, in_blocks, cg_index, cg_value)``.
    """
    return torch.ops.equiscale.uvu_scatter(x, edge_attr, weight, edge_index, num_nodes, dim_out, *metadata)


def _fake_forward(x, edge_attr, weight, edge_index, num_nodes, dim_out, paths, in_blocks, cg_index, cg_value):
    return x.new_empty(num_nodes, dim_out)


def _fake_backward(grad_out, x, edge_attr, weight, edge_index, num_nodes, paths, in_blocks, cg_index, cg_value,
                   need_x, need_attr, need_weight):
    def shaped(tensor: torch.Tensor, needed: bool) -> torch.Tensor:
        return torch.empty_like(tensor, memory_format=torch.contiguous_format) if needed else x.new_empty(0)

    return shaped(x, need_x), shaped(edge_attr, need_attr), shaped(weight, need_weight)


def _fake_double_backward(grad_out, x, edge_attr, weight, grad_x, grad_attr, grad_weight, edge_index, num_nodes, paths,
                          in_blocks, cg_index, cg_value, need_grad_out, need_x, need_attr, need_weight):
    def shaped(tensor: torch.Tensor, needed: bool) -> torch.Tensor:
        return torch.empty_like(tensor, memory_format=torch.contiguous_format) if needed else x.new_empty(0)

    return shaped(grad_out, need_grad_out), shaped(x, need_x), shaped(edge_attr, need_attr), shaped(weight, need_weight)


def _setup_forward(ctx, inputs, output) -> None:
    x, edge_attr, weight, edge_index, num_nodes, dim_out, *metadata = inputs
    ctx.save_for_backward(x, edge_attr, weight, edge_index, *metadata)
    ctx.num_nodes = num_nodes


def _backward_forward(ctx, grad_out):
    x, edge_attr, weight, edge_index, *metadata = ctx.saved_tensors
    need_x, need_attr, need_weight = ctx.needs_input_grad[:3]
    gx, gy, gw = _backward(grad_out, x, edge_attr, weight, edge_index, ctx.num_nodes, metadata, need_x, need_attr, need_weight)
    return gx, gy, gw, None, None, None, None, None, None, None


def _backward(grad_out, x, edge_attr, weight, edge_index, num_nodes, metadata, need_x, need_attr, need_weight):
    """The three gradients, None where not needed."""
    if not (need_x or need_attr or need_weight):
        return None, None, None
    gx, gy, gw = torch.ops.equiscale.uvu_scatter_backward(grad_out, x, edge_attr, weight, edge_index, num_nodes, *metadata,
                                                          need_x, need_attr, need_weight)
    return gx if need_x else None, gy if need_attr else None, gw if need_weight else None


def _setup_backward(ctx, inputs, output) -> None:
    grad_out, x, edge_attr, weight, edge_index, num_nodes, *rest = inputs
    metadata, masks = rest[:4], rest[4:]
    ctx.save_for_backward(grad_out, x, edge_attr, weight, edge_index, *metadata)
    ctx.num_nodes, ctx.masks = num_nodes, tuple(masks)
    ctx.dim_out = grad_out.shape[1]


def _add(total: Optional[torch.Tensor], term: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if term is None:
        return total
    return term if total is None else total + term


def _backward_backward(ctx, grad_gx, grad_gy, grad_gw):
    """Cotangents (Gx, GY, Gw) of the three gradients -> gradients to (g, x, Y, w).

    With F(x, Y, w, g) = <g, uvu_scatter(x, Y, w)> multilinear, gx = dF/dx etc., so
    d<Gx, gx>/dY = grad_Y of F(Gx, Y, w, g), and so on: three backward calls (one per
    cotangent) and up to three forward calls (for g).
    """
    grad_out, x, edge_attr, weight, edge_index, *metadata = ctx.saved_tensors
    need_x, need_attr, need_weight = ctx.masks
    n, dim_out = ctx.num_nodes, ctx.dim_out
    want_g, want_x, want_y, want_w = ctx.needs_input_grad[:4]
    Gx = grad_gx if need_x and grad_gx is not None and grad_gx.numel() else None
    GY = grad_gy if need_attr and grad_gy is not None and grad_gy.numel() else None
    Gw = grad_gw if need_weight and grad_gw is not None and grad_gw.numel() else None
    if Gx is None and GY is None and Gw is None:
        return (None,) * 13
    if not torch.is_grad_enabled():  # the usual case (no third derivative): one fused op, two passes
        outputs = torch.ops.equiscale.uvu_scatter_double_backward(
            grad_out, x, edge_attr, weight, Gx, GY, Gw, edge_index, n, *metadata, want_g, want_x, want_y, want_w)
        return tuple(t if want else None for t, want in zip(outputs, (want_g, want_x, want_y, want_w))) + (None,) * 9
    dg = dx = dy = dw = None  # differentiable again: composed of the two differentiable ops
    if Gx is not None:  # gx = grad_x(Y, w, g): depends on Y, w, g
        if want_g:
            dg = _add(dg, uvu_scatter(Gx, edge_attr, weight, edge_index, n, dim_out, metadata))
        _, ty, tw = _backward(grad_out, Gx, edge_attr, weight, edge_index, n, metadata, False, want_y, want_w)
        dy, dw = _add(dy, ty), _add(dw, tw)
    if GY is not None:  # gY = grad_Y(x, w, g)
        if want_g:
            dg = _add(dg, uvu_scatter(x, GY, weight, edge_index, n, dim_out, metadata))
        tx, _, tw = _backward(grad_out, x, GY, weight, edge_index, n, metadata, want_x, False, want_w)
        dx, dw = _add(dx, tx), _add(dw, tw)
    if Gw is not None:  # gw = grad_w(x, Y, g)
        if want_g:
            dg = _add(dg, uvu_scatter(x, edge_attr, Gw, edge_index, n, dim_out, metadata))
        tx, ty, _ = _backward(grad_out, x, edge_attr, Gw, edge_index, n, metadata, want_x, want_y, False)
        dx, dy = _add(dx, tx), _add(dy, ty)
    return (dg, dx, dy, dw) + (None,) * 9


def register() -> None:
    """Register the fake implementations and autograd formulas (once, after the library loads)."""
    torch.library.register_fake("equiscale::uvu_scatter", _fake_forward)
    torch.library.register_fake("equiscale::uvu_scatter_backward", _fake_backward)
    torch.library.register_fake("equiscale::uvu_scatter_double_backward", _fake_double_backward)
    torch.library.register_autograd("equiscale::uvu_scatter", _backward_forward, setup_context=_setup_forward)
    torch.library.register_autograd("equiscale::uvu_scatter_backward", _backward_backward, setup_context=_setup_backward)
