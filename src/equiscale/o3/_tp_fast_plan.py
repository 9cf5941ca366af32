"""Index plan of the fast tensor-product kernels (see ``_tp_fast`` for the algorithm).

Everything here is built once per module, in float64 / int64 on the CPU; the kernels cast and
move it once per (dtype, device).
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import torch

__all__ = ["FastPlan", "build_fast_plan"]


class FastPath(NamedTuple):
    mode: str  # "uvu" or "uvw"
    group: int
    k0: int  # first row of the path in its group's S (n, K, u)
    k: int
    out_start: int
    mul_out: int
    w_off: int  # offset in the flat weights, -1 without weight


class FastGroup(NamedTuple):
    in_start: int
    mul: int  # u
    d1: int
    K: int
    r_off: int  # offset of this group's S (flattened) in R
    b_off: int  # offset of this group's B (flattened) in y @ cy_fwd


class FastOutput(NamedTuple):
    """uvw paths into one output block: ``OT[n, k, w] = T[n, k, (p, u)] @ W[(p, u), w]``."""

    out_start: int
    k: int
    mul_out: int
    paths: Tuple[FastPath, ...]
    add: bool  # a uvu path also writes this block


class SegSum(NamedTuple):
    """Weighted uvu paths of one group with the same ``k``: columns ``[r0, r0 + npath k u)``
    of the group's flattened ``S``."""

    group: int
    r0: int
    npath: int
    k: int
    u: int
    gw0: int  # first column in the internal weight-gradient buffer
    w_offs: Tuple[int, ...]  # weight offsets of the paths, in row order


class FastPlan(NamedTuple):
    groups: Tuple[FastGroup, ...]
    outputs: Tuple[FastOutput, ...]
    segsums: Tuple[SegSum, ...]
    dim1: int
    dim_out: int
    r_width: int
    gw_width: int
    weight_numel: int
    shared: bool
    cy_fwd: torch.Tensor  # (dim2, sum K d1): B_all = y @ cy_fwd, groups' (K, d1) blocks
    cy_bwd: torch.Tensor  # (sum d1 K, dim2): gy = gB_all @ cy_bwd, groups' (d1, K) blocks
    layers: Tuple[Tuple[torch.Tensor, torch.Tensor], ...]  # uvu: out = R_ext[perm] * w_ext[widx]
    r_to_out: torch.Tensor  # (r_width,) out column of each R column (uvu rows; 0 elsewhere)
    r_to_w: torch.Tensor  # (r_width,) column of w_ext weighting each R column
    gw_index: torch.Tensor  # (weight_numel,) column of the internal weight-gradient (+zero)
    x_index: torch.Tensor  # (dim1,) column of the internal x-gradient (+zero)
    any_uvu: bool

    def chunk_size(self, n: int, device: torch.device, budget: int) -> int:
        if device.type != "cpu":
            return max(n, 1)
        row = 2 * self.dim_out + 4 * self.r_width
        return max(64, min(n, budget // max(row, 1)))


def build_fast_plan(irreps_in1, irreps_in2, irreps_out, instructions, shared: bool,
                    weight_offsets: List[int], weight_numel: int,
                    cg: Dict) -> Optional[FastPlan]:
    """Plan ``instructions`` (normalised, ``uvu`` or shared-weight ``uvw``, ``mul_in2 == 1``).

    ``weight_offsets[i]``: offset of instruction ``i`` in the flat weights; ``cg[(l1, l2, l3)]``:
    float64 3j symbols. ``None`` when there is nothing to plan.
    """
    if not instructions:
        return None
    s1, s2, so = irreps_in1.slices(), irreps_in2.slices(), irreps_out.slices()
    dim2 = irreps_in2.dim
    by_block: Dict[int, list] = {}
    for idx, ins in enumerate(instructions):
        by_block.setdefault(ins.i_in1, []).append((idx, ins))
    groups, paths_all, cys_f, cys_b, segsums = [], [], [], [], []
    r_off = b_off = gw0 = 0
    for g, i1 in enumerate(sorted(by_block)):
        mul1, ir1 = irreps_in1[i1]
        weighted = lambda e: e[1].connection_mode == "uvu" and e[1].has_weight  # noqa: E731
        # weighted uvu paths first, sorted by k, so that their k-sums batch by k
        entries = sorted(by_block[i1], key=lambda e: (not weighted(e),
                                                      irreps_out[e[1].i_out].ir.dim, e[0]))
        K = sum(irreps_out[ins.i_out].ir.dim for _, ins in entries)
        cy = torch.zeros(dim2, K, ir1.dim, dtype=torch.float64)
        k0 = 0
        for idx, ins in entries:
            ir2, (mulo, iro) = irreps_in2[ins.i_in2].ir, irreps_out[ins.i_out]
            cy[s2[ins.i_in2], k0:k0 + iro.dim, :] = (
                cg[(ir1.l, ir2.l, iro.l)] * ins.path_weight).permute(1, 2, 0)
            paths_all.append(FastPath(ins.connection_mode, g, k0, iro.dim, so[ins.i_out].start,
                                      mulo, weight_offsets[idx] if ins.has_weight else -1))
            k0 += iro.dim
        for k in sorted({irreps_out[ins.i_out].ir.dim for e in entries if weighted(e)
                         for ins in [e[1]]}):
            mine = [p for p in paths_all if p.group == g and p.mode == "uvu" and p.w_off >= 0
                    and p.k == k]
            segsums.append(SegSum(g, mine[0].k0 * mul1, len(mine), k, mul1, gw0,
                                  tuple(p.w_off for p in mine)))
            gw0 += len(mine) * mul1
        cys_f.append(cy.reshape(dim2, K * ir1.dim))
        cys_b.append(cy.permute(2, 1, 0).reshape(ir1.dim * K, dim2))
        groups.append(FastGroup(s1[i1].start, mul1, ir1.dim, K, r_off, b_off))
        r_off += K * mul1
        b_off += K * ir1.dim
    r_width, gw_width = r_off, gw0
    uvu = [p for p in paths_all if p.mode == "uvu"]
    # forward gathers: layer L holds the L-th uvu path of every output block
    layers, seen = [], {}
    for p in uvu:
        layer = seen.get(p.out_start, 0)
        seen[p.out_start] = layer + 1
        while len(layers) <= layer:
            layers.append((torch.full((irreps_out.dim,), r_width, dtype=torch.long),
                           torch.full((irreps_out.dim,), weight_numel, dtype=torch.long)))
        perm, widx = layers[layer]
        g = groups[p.group]
        w, kk = torch.arange(p.mul_out).view(-1, 1), torch.arange(p.k).view(1, -1)
        cols = p.out_start + w * p.k + kk  # e3nn order (w, k)
        perm[cols.reshape(-1)] = (g.r_off + (p.k0 + kk) * g.mul + w).reshape(-1)
        if p.w_off >= 0:
            widx[cols.reshape(-1)] = (p.w_off + w + 0 * kk).reshape(-1)
    r_to_out = torch.zeros(r_width, dtype=torch.long)
    r_to_w = torch.full((r_width,), weight_numel, dtype=torch.long)
    for perm, widx in layers:
        hit = perm < r_width
        r_to_out[perm[hit]] = torch.arange(irreps_out.dim)[hit]
        r_to_w[perm[hit]] = widx[hit]
    gw_index = torch.full((weight_numel,), gw_width, dtype=torch.long)
    for s in segsums:
        for j, off in enumerate(s.w_offs):
            gw_index[off:off + s.u] = s.gw0 + j * s.u + torch.arange(s.u)
    x_index = torch.full((irreps_in1.dim,), sum(g.d1 * g.mul for g in groups), dtype=torch.long)
    c = 0
    for g in groups:
        u, i = torch.arange(g.mul).view(-1, 1), torch.arange(g.d1).view(1, -1)
        x_index[g.in_start + (u * g.d1 + i).reshape(-1)] = (c + i * g.mul + u).reshape(-1)
        c += g.d1 * g.mul
    outs = {}
    for p in paths_all:
        if p.mode == "uvw":
            outs.setdefault(p.out_start, []).append(p)
    outputs = tuple(FastOutput(start, ps[0].k, ps[0].mul_out, tuple(ps), start in seen)
                    for start, ps in sorted(outs.items()))
    return FastPlan(tuple(groups), outputs, tuple(segsums), irreps_in1.dim, irreps_out.dim,
                    r_width, gw_width, weight_numel, shared, torch.cat(cys_f, 1),
                    torch.cat(cys_b, 0), tuple(layers), r_to_out, r_to_w, gw_index, x_index,
                    bool(uvu))
