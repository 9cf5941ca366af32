"""Python side of the compiled shared-weight tensor product (``uvw`` paths).

The operator ``torch.ops.equiscale.tensor_product_uvw(x, y, w, *plan, dim_out)`` computes, for
``x`` ``(N, irreps_in1.dim)``, ``y`` ``(N, irreps_in2.dim)`` and the flat shared weights ``w``
``(weight_numel,)`` in e3nn's layout, the sum over the planned paths

    out[n, o0 + w dk + k] = sum_(u, v, i, j) W_p[u, v, w] C_p[i, j, k] x[n, x0 + u d1 + i] y[n, y0 + v d2 + j]

(``C_p``: the 3j symbol times the path normalisation) -> ``(N, dim_out)``, zero on output blocks no
path reaches. Its backward is ``tensor_product_uvw_backward`` (compiled too); that op's own
backward is taken by autograd through :func:`twin`, a plain-torch evaluation of the same plan, so
every derivative order exists. :class:`UvwPlan` is built once per module.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

_FORWARD = "equiscale::tensor_product_uvw"
_BACKWARD = "equiscale::tensor_product_uvw_backward"


class UvwPlan(NamedTuple):
    """Index tables of the kernel (int64, CPU) and the non-zero coefficients (float64).

    ``xblocks (B, 3)``: ``x0, m1, d1``; ``groups (G, 4)``: ``o0, mo, dk, ncols``; ``paths (P, 5)``:
    ``xblock, y0, group, col0, w_off, w_stride`` (one row per copy ``v`` of the second input's irrep:
    ``y0`` and ``w_off`` point at that copy, ``w_stride = mul_in2 mul_out``); ``runs (R, 4)``:
    ``path, k, begin, end`` into ``nz (Z, 2)``: ``i, j`` with ``coef (Z,)``.
    """

    xblocks: torch.Tensor
    groups: torch.Tensor
    paths: torch.Tensor
    runs: torch.Tensor
    nz: torch.Tensor
    coef: torch.Tensor
    dim_out: int

    def tensors(self) -> Tuple[torch.Tensor, ...]:
        return (self.xblocks, self.groups, self.paths, self.runs, self.nz, self.coef)


def build_plan(irreps_in1, irreps_in2, irreps_out, paths: Sequence[Tuple], tol: float = 0.0) -> Optional[UvwPlan]:
    """Plan of ``paths``: tuples ``(i_in1, i_in2, i_out, w_off, cg)`` with ``cg`` the float64
    ``(d1, d2, dk)`` coefficients (3j symbol times path weight) and ``w_off`` the offset of the
    path's ``(m1, m2, mo)`` weights. None if there is no path."""
    if not paths:
        return None
    s1, s2, so = irreps_in1.slices(), irreps_in2.slices(), irreps_out.slices()
    xb_index: Dict[int, int] = {}
    xblocks: List[List[int]] = []
    group_index: Dict[int, int] = {}
    groups: List[List[int]] = []
    rows, runs, nz, coef = [], [], [], []
    for i1, i2, io, w_off, cg in sorted(paths, key=lambda p: (p[2], p[0], p[1])):
        (m1, ir1), (m2, ir2), (mo, iro) = irreps_in1[i1], irreps_in2[i2], irreps_out[io]
        if i1 not in xb_index:
            xb_index[i1] = len(xblocks)
            xblocks.append([s1[i1].start, m1, ir1.dim])
        if io not in group_index:
            group_index[io] = len(groups)
            groups.append([so[io].start, mo, iro.dim, 0])
        g = group_index[io]
        first = len(rows)
        for v in range(m2):  # copy v of y's irrep: its own y slice and weight rows W[:, v, :]
            rows.append([xb_index[i1], s2[i2].start + v * ir2.dim, g, groups[g][3], w_off + v * mo, m2 * mo])
            groups[g][3] += m1
        for k in range(iro.dim):
            begin = len(nz)
            for i, j in (cg[:, :, k].abs() > tol).nonzero().tolist():
                nz.append([i, j])
                coef.append(float(cg[i, j, k]))
            runs.extend([p, k, begin, len(nz)] for p in range(first, len(rows)))
    long = dict(dtype=torch.long)
    return UvwPlan(torch.tensor(xblocks, **long).view(-1, 3), torch.tensor(groups, **long).view(-1, 4),
                   torch.tensor(rows, **long).view(-1, 6), torch.tensor(runs, **long).view(-1, 4),
                   torch.tensor(nz, **long).view(-1, 2), torch.tensor(coef, dtype=torch.float64),
                   irreps_out.dim)


def tensor_product_uvw(plan: UvwPlan, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``(N, dim_out)`` (see the module docstring); the caller checks ``use_kernels`` first."""
    return torch.ops.equiscale.tensor_product_uvw(x, y, w, *plan.tensors(), plan.dim_out)


def twin(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, xblocks, groups, paths, runs, nz, coef,
         dim_out: int) -> torch.Tensor:
    """The operator in plain torch ops (differentiable to every order): one einsum per path."""
    n = x.shape[0]
    blocks = [None] * groups.shape[0]
    dense: Dict[int, torch.Tensor] = {}
    for p, k, b, e in runs.tolist():
        xb, y0, g = paths[p, :3].tolist()
        d1, dk = int(xblocks[xb, 2]), int(groups[g, 2])
        c = dense.setdefault(p, torch.zeros(d1, int(y.shape[1]), dk, dtype=x.dtype, device=x.device))
        for (i, j), v in zip(nz[b:e].tolist(), coef[b:e].tolist()):
            c[i, y0 + j, k] = v  # placed at y's full width: the einsum takes all of y
    for p, (xb, y0, g, _, w_off, w_stride) in enumerate(paths.tolist()):
        x0, m1, d1 = xblocks[xb].tolist()
        o0, mo, dk, _ = groups[g].tolist()
        c = dense.get(p)
        if c is None:
            continue
        xs = x[:, x0:x0 + m1 * d1].reshape(n, m1, d1)
        rows = torch.arange(m1, device=x.device).view(-1, 1) * w_stride
        ws = w[w_off + rows + torch.arange(mo, device=x.device)]
        part = torch.einsum("nui,nj,ijk,uw->nwk", xs, y, c, ws)
        blocks[g] = part if blocks[g] is None else blocks[g] + part
    out = x.new_zeros(n, dim_out)
    cols = []
    for g, (o0, mo, dk, _) in enumerate(groups.tolist()):
        if blocks[g] is not None:
            cols.append((o0, blocks[g].reshape(n, mo * dk)))
    if not cols:
        return out
    index = torch.cat([torch.arange(o0, o0 + b.shape[1], device=x.device) for o0, b in cols])
    return out.index_copy(1, index, torch.cat([b for _, b in cols], 1))


def _fake_forward(x, y, w, xblocks, groups, paths, runs, nz, coef, dim_out):
    return x.new_empty((x.shape[0], dim_out))


def _fake_backward(grad, x, y, w, xblocks, groups, paths, runs, nz, coef, need_x, need_y, need_w):
    return [x.new_empty(x.shape) if need_x else x.new_empty(0), y.new_empty(y.shape) if need_y else y.new_empty(0),
            w.new_empty(w.shape) if need_w else w.new_empty(0)]


def _setup_forward(ctx, inputs, output) -> None:
    x, y, w = inputs[:3]
    ctx.save_for_backward(x, y, w)
    ctx.plan = inputs[3:9]


def _backward_of_forward(ctx, grad):
    x, y, w = ctx.saved_tensors
    need = ctx.needs_input_grad[:3]
    gx, gy, gw = torch.ops.equiscale.tensor_product_uvw_backward(grad, x, y, w, *ctx.plan, *need)
    return (gx if need[0] else None, gy if need[1] else None, gw if need[2] else None) + (None,) * 7


def _setup_backward(ctx, inputs, output) -> None:
    grad, x, y, w = inputs[:4]
    ctx.save_for_backward(grad, x, y, w)
    ctx.plan = inputs[4:10]
    ctx.need = inputs[10:13]


def _backward_of_backward(ctx, grads):
    """Through :func:`twin`: the outputs are ``J^T grad``; autograd differentiates them again."""
    ggx, ggy, ggw = grads
    grad, x, y, w = ctx.saved_tensors
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(True) for t in (grad, x, y, w)]
        g, xs, ys, ws = leaves
        out = twin(xs, ys, ws, *ctx.plan, grad.shape[1])
        firsts = torch.autograd.grad(out, (xs, ys, ws), g, create_graph=True, allow_unused=True)
        pairs = [(f, gg) for f, gg, need in zip(firsts, (ggx, ggy, ggw), ctx.need)
                 if need and f is not None and gg is not None and f.requires_grad]
        result = [None] * 4
        if pairs:
            result = list(torch.autograd.grad([f for f, _ in pairs], leaves, [gg for _, gg in pairs],
                                              create_graph=create_graph, allow_unused=True))
    result = [torch.zeros_like(t) if r is None else r for r, t in zip(result, (grad, x, y, w))]
    return tuple(result) + (None,) * 9


def register() -> None:
    """Attach fake implementations and autograd to the operators (called once by ``load()``)."""
    torch.library.register_fake(_FORWARD, _fake_forward)
    torch.library.register_fake(_BACKWARD, _fake_backward)
    torch.library.register_autograd(_FORWARD, _backward_of_forward, setup_context=_setup_forward)
    torch.library.register_autograd(_BACKWARD, _backward_of_backward, setup_context=_setup_backward)
