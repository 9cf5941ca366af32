"""Reference tensor-product kernel: one small contraction chain per instruction (any mode).

It supports every connection mode of e3nn 0.6 (``uvw uvu uvv uuw uuu uvuv uvu<v u<vw``), shared
and per-sample weights, and is differentiable to any order through plain autograd. The fast
kernels in ``_tp_fast`` handle the common modes; this one handles the rest and is the reference
the tests compare them with.

Shapes: ``x1 (N, dim1)``, ``x2 (N, dim2)``, ``weight (weight_numel,)`` (shared) or
``(N, weight_numel)``; returns ``(N, dim_out)`` in e3nn's ``mul_ir`` order.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
from equiscale.errors import InvalidArgumentError

__all__ = ["GenericPath", "generic_tensor_product"]


class GenericPath(NamedTuple):
    """One instruction as the kernel sees it (offsets into flat feature and weight vectors)."""

    mode: str
    in1: Tuple[int, int, int]  # (start, mul, ir_dim)
    in2: Tuple[int, int, int]
    out: Tuple[int, int, int]
    i_out: int
    weight: Optional[Tuple[int, Tuple[int, ...]]]  # (offset, path_shape) or None
    cg: torch.Tensor  # (d1, d2, d3) float64, already multiplied by the path weight


def _pairs(mul: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    iu = torch.triu_indices(mul, mul, 1, device=device)
    return iu[0], iu[1]


def _path_output(p: GenericPath, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                 w: Optional[torch.Tensor], shared: bool) -> torch.Tensor:
    """Contribution of one path, ``(N, mul_out, d3)``; ``c`` is the (d1, d2, d3) coefficient."""
    n, mul1, d1 = a.shape
    mul2, d2 = b.shape[1], b.shape[2]
    d3 = c.shape[2]
    # a (N, u, i) x c (i, j, k) -> (N, u, j, k): one matrix product over i
    ac = (a.reshape(n * mul1, d1) @ c.reshape(d1, d2 * d3)).reshape(n, mul1, d2, d3)
    mode = p.mode
    z = "" if shared else "z"
    if mode[:2] == "uu":  # same channel u on both inputs
        s = torch.einsum("zujk,zuj->zuk", ac, b)
        if mode == "uuu":
            return s * w.unsqueeze(-1) if w is not None else s
        if w is not None:  # uuw
            return torch.einsum(f"zuk,{z}uw->zwk", s, w)
        return s.sum(1, keepdim=True)
    s = torch.einsum("zujk,zvj->zuvk", ac, b)  # (N, u, v, k)
    if mode == "uvw":
        return torch.einsum(f"zuvk,{z}uvw->zwk", s, w)
    if mode == "uvu":
        return torch.einsum(f"zuvk,{z}uv->zuk", s, w) if w is not None else s.sum(2)
    if mode == "uvv":
        return torch.einsum(f"zuvk,{z}uv->zvk", s, w) if w is not None else s.sum(1)
    if mode == "uvuv":
        s = s * w.unsqueeze(-1) if w is not None else s
        return s.reshape(n, mul1 * mul2, d3)
    iu, iv = _pairs(mul1, a.device)
    s = s[:, iu, iv]  # (N, q, k) over the pairs u < v
    if mode == "uvu<v":
        return s * w.unsqueeze(-1) if w is not None else s
    if mode == "u<vw":
        return torch.einsum(f"zqk,{z}qw->zwk", s, w)
    raise InvalidArgumentError(f"unknown connection mode {mode!r}")


def generic_tensor_product(paths: List[GenericPath], out_blocks: List[Tuple[int, int]],
                           x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor,
                           shared: bool, cgs: List[torch.Tensor]) -> torch.Tensor:
    """Sum of all paths, ``(N, dim_out)``; ``out_blocks`` lists ``(mul, ir_dim)`` per output.

    ``cgs``: the paths' coefficients in the inputs' dtype and device.
    """
    n = x1.shape[0]
    per_out: List[List[torch.Tensor]] = [[] for _ in out_blocks]
    for p, c in zip(paths, cgs):
        s1, m1, d1 = p.in1
        s2, m2, d2 = p.in2
        a = x1.narrow(1, s1, m1 * d1).reshape(n, m1, d1)
        b = x2.narrow(1, s2, m2 * d2).reshape(n, m2, d2)
        w = None
        if p.weight is not None:
            off, shape = p.weight
            numel = 1
            for s in shape:
                numel *= s
            if shared:
                w = weight.narrow(0, off, numel).reshape(shape)
            else:
                w = weight.narrow(1, off, numel).reshape((n,) + tuple(shape))
        y = _path_output(p, a, b, c, w, shared)
        per_out[p.i_out].append(y.reshape(n, -1))
    blocks = []
    for (mul, d), contribs in zip(out_blocks, per_out):
        if mul * d == 0:
            continue
        if contribs:
            acc = contribs[0]
            for c in contribs[1:]:
                acc = acc + c
            blocks.append(acc)
        else:
            blocks.append(x1.new_zeros(n, mul * d))
    if not blocks:
        return x1.new_zeros(n, 0)
    return torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]
