"""Gather -> channelwise tensor product with spherical harmonics -> scatter, as one kernel.

For a message-passing layer whose edge attributes are spherical harmonics (one copy of each l)
and whose tensor product is ``uvu`` with per-edge weights, the result at node n is

    out[n] = sum_{e : target(e) = n}  TP(x[source(e)], Y[e], w[e])

``GatherTensorProductScatter`` computes this without ever building the gathered features
``x[source]`` at full width or the per-edge output in ``mul_ir`` layout. It works one input irrep
block (``mul x l1``) at a time, in a channel-last layout ``(edge, component, channel)``:

1. ``M[e] = Y[e] . C`` -- the Clebsch-Gordan coefficients of every path of the block contracted with
   the edge's spherical harmonics, a small ``(D3, d1)`` matrix per edge (no channel axis);
2. ``T[e] = M[e] @ x[source(e)]`` -- one batched matmul ``(D3, d1) @ (d1, mul)`` per edge;
3. ``T *= w[e]`` -- paths with the same output dimension are weighted by one broadcast multiply;
4. ``out += scatter_sum(T, target)``.

The node-level result is then permuted into the ``mul_ir`` layout of ``irreps_mid``, so it equals
``scatter_sum(TensorProduct(...)(x[source], Y, w), target)`` with the same instructions (e3nn's
``component``/``element`` normalisation). Everything is plain torch, differentiable to any order.
A variant that also avoids the per-block ``T`` (summing over padded neighbour slots inside the
matmul) was measured slower (benchmarks/RESULTS.md, message passing).

On CPU, when the compiled kernels are available (:func:`equiscale._kernels.use_kernels`), the
same sum runs as one C++ kernel per direction (``torch.ops.equiscale.uvu_scatter``, see
:mod:`equiscale._kernels.message_passing`) that keeps no per-edge intermediate at all; the torch
code above is then the fallback (CUDA, no compiler, ``EQUISCALE_KERNELS=off``) and the test
reference.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from equiscale import _kernels, o3
from equiscale._kernels.message_passing import uvu_scatter

__all__ = ["GatherTensorProductScatter", "kernel_metadata"]


def kernel_metadata(irreps_in: o3.Irreps, irreps_edge: o3.Irreps, irreps_mid: o3.Irreps,
                    instructions: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compiled kernel's description of the paths (layout in ``csrc/message_passing.cpp``).

    Returns:
        ``paths`` int64 ``(P, 8)`` (input offset, mul, d1, harmonic offset, d2, output offset, d3,
        weight offset), ``in_blocks`` int64 ``(B, 3)`` (offset, mul, d of every input block),
        ``cg_index`` int64 (``P + 1`` path starts, then ``(a, b, c)`` triples) and ``cg_value``
        float64: the non-zero coefficients ``sqrt(d3) * wigner_3j(l1, l2, l3)[a, b, c]``.
    """
    in_offsets = [block.start for block in irreps_in.slices()]
    edge_offsets = [block.start for block in irreps_edge.slices()]
    mid_offsets = [block.start for block in irreps_mid.slices()]
    paths, starts, triples, values, weight_offset = [], [0], [], [], 0
    for i1, i2, i_out, *_ in instructions:
        (mul, ir_1), (_, ir_2), (_, ir_out) = irreps_in[i1], irreps_edge[i2], irreps_mid[i_out]
        paths.append([in_offsets[i1], mul, ir_1.dim, edge_offsets[i2], ir_2.dim, mid_offsets[i_out], ir_out.dim, weight_offset])
        weight_offset += mul
        coefficient = math.sqrt(ir_out.dim) * o3.wigner_3j(ir_1.l, ir_2.l, ir_out.l, dtype=torch.float64)
        nonzero = (coefficient.abs() > 1e-14).nonzero()
        triples.append(nonzero)
        values.append(coefficient[tuple(nonzero.t())])
        starts.append(starts[-1] + nonzero.shape[0])
    in_blocks = torch.tensor([[offset, mul, ir.dim] for offset, (mul, ir) in zip(in_offsets, irreps_in)], dtype=torch.long).reshape(-1, 3)
    cg_index = torch.cat([torch.tensor(starts, dtype=torch.long)] + [t.reshape(-1) for t in triples])
    cg_value = torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)
    return torch.tensor(paths, dtype=torch.long).reshape(-1, 8), in_blocks, cg_index, cg_value


def unsupported_reason(irreps_in: o3.Irreps, irreps_edge: o3.Irreps, irreps_mid: o3.Irreps, instructions: Sequence[tuple]) -> str | None:
    """Why the kernel cannot run these instructions (None if it can)."""
    if any(mul != 1 for mul, _ in irreps_edge):
        return f"edge irreps {irreps_edge} must hold each irrep once (spherical harmonics)"
    outputs = [ins[2] for ins in instructions]
    if len(set(outputs)) != len(outputs) or sorted(outputs) != list(range(len(irreps_mid))):
        return "each output irrep must come from exactly one instruction"
    for ins in instructions:
        i1, i2, i_out, mode, has_weight = ins[:5]
        if mode != "uvu" or not has_weight or (len(ins) > 5 and ins[5] != 1.0):
            return f"instruction {ins} is not a weighted 'uvu' path"
        (mul_1, ir_1), (_, ir_2), (mul_out, ir_out) = irreps_in[i1], irreps_edge[i2], irreps_mid[i_out]
        if mul_out != mul_1 or ir_out not in ir_1 * ir_2:
            return f"instruction {ins} does not map {mul_1}x{ir_1} x {ir_2} to {mul_out}x{ir_out}"
    return None


class GatherTensorProductScatter(nn.Module):
    """``out[n] = sum_{e -> n} TP(x[source(e)], Y[e], w[e])`` for ``uvu`` paths and spherical harmonics.

    Args:
        irreps_in: node features ``x``.
        irreps_edge: edge attributes ``Y``, each irrep once (e.g. ``"0e+1o+2e"``).
        irreps_mid: the tensor product's output irreps.
        instructions: ``(i_in, i_edge, i_mid, "uvu", True)`` tuples, as for ``o3.TensorProduct``;
            each ``i_mid`` used exactly once. The weights of instruction k are ``mul_in`` consecutive
            columns of ``w``, in instruction order (``o3.TensorProduct``'s layout).

    Shapes: ``x (N, irreps_in.dim)``, ``Y (E, irreps_edge.dim)``, ``w (E, weight_numel)``,
    ``edge_index (2, E)`` ``[source, target]`` -> ``(num_nodes, irreps_mid.dim)``.

    The compiled kernel runs whenever :func:`equiscale._kernels.use_kernels` allows it (CPU
    tensors of one dtype, irreps up to l = 7); set the attribute ``compiled = False`` to force the
    torch path.
    """

    def __init__(self, irreps_in: o3.Irreps | str, irreps_edge: o3.Irreps | str, irreps_mid: o3.Irreps | str, instructions: Sequence[tuple]) -> None:
        super().__init__()
        self.irreps_in, self.irreps_edge, self.irreps_mid = o3.Irreps(irreps_in), o3.Irreps(irreps_edge), o3.Irreps(irreps_mid)
        instructions = [tuple(ins) for ins in instructions]
        reason = unsupported_reason(self.irreps_in, self.irreps_edge, self.irreps_mid, instructions)
        if reason is not None:
            raise ValueError(f"GatherTensorProductScatter cannot run these instructions: {reason}")
        self.weight_numel = sum(self.irreps_in[ins[0]].mul for ins in instructions)
        edge_offsets = [block.start for block in self.irreps_edge.slices()]
        mid_offsets = [block.start for block in self.irreps_mid.slices()]

        # Runs: maximal stretches of consecutive instructions with the same input block and output size.
        runs: list[list[tuple]] = []
        for ins in instructions:
            d3 = self.irreps_mid[ins[2]].ir.dim
            if runs and runs[-1][0][0] == ins[0] and self.irreps_mid[runs[-1][0][2]].ir.dim == d3:
                runs[-1].append(ins)
            else:
                runs.append([ins])
        self._weight_split = [len(run) * self.irreps_in[run[0][0]].mul for run in runs]
        self._in_split = [mul * ir.dim for mul, ir in self.irreps_in]
        # Per input block: its runs (index into `runs`), CG matrix, row count.
        self._blocks: list[tuple[int, int, int, list[int], list[tuple[int, int]]]] = []
        mid_index = torch.empty(self.irreps_mid.dim, dtype=torch.long)
        node_offset = 0
        for i, (mul, ir_1) in enumerate(self.irreps_in):
            block_runs = [r for r, run in enumerate(runs) if run[0][0] == i]
            d1 = ir_1.dim
            rows = sum(len(runs[r]) * self.irreps_mid[runs[r][0][2]].ir.dim for r in block_runs)
            cg = torch.zeros(self.irreps_edge.dim, rows, d1, dtype=torch.float64)
            row = 0
            for r in block_runs:
                for _, i2, i_out, *_ in runs[r]:
                    ir_2, ir_out = self.irreps_edge[i2].ir, self.irreps_mid[i_out].ir
                    coefficient = math.sqrt(ir_out.dim) * o3.wigner_3j(ir_1.l, ir_2.l, ir_out.l, dtype=torch.float64)
                    cg[edge_offsets[i2] : edge_offsets[i2] + ir_2.dim, row : row + ir_out.dim] = coefficient.permute(1, 2, 0)
                    # node layout of this block: (row, channel); mid layout: (channel, component)
                    where = node_offset + (row + torch.arange(ir_out.dim)) * mul
                    mid_index[mid_offsets[i_out] : mid_offsets[i_out] + mul * ir_out.dim] = (
                        where.unsqueeze(0) + torch.arange(mul).unsqueeze(1)
                    ).reshape(-1)
                    row += ir_out.dim
            self.register_buffer(f"_cg{i}", cg.reshape(self.irreps_edge.dim, rows * d1), persistent=False)
            groups = [(len(runs[r]), self.irreps_mid[runs[r][0][2]].ir.dim) for r in block_runs]
            self._blocks.append((mul, d1, rows, block_runs, groups))
            node_offset += rows * mul
        self._dim_mid = self.irreps_mid.dim
        self._identity_mid = bool((mid_index == torch.arange(self.irreps_mid.dim)).all())
        self.register_buffer("_mid_index", mid_index, persistent=False)
        # CPU constants of the compiled kernel (not buffers: the kernel runs on CPU only, and
        # Module.float() must not round the float64 coefficients)
        self._metadata = kernel_metadata(self.irreps_in, self.irreps_edge, self.irreps_mid, instructions)
        self.compiled = max(ir.l for irreps in (self.irreps_in, self.irreps_mid) for _, ir in irreps) <= 7  # the kernel's limit

    def forward(self, x: torch.Tensor, edge_attr: torch.Tensor, weight: torch.Tensor, edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
        if (self.compiled and x.dtype == edge_attr.dtype == weight.dtype and x.dtype in (torch.float32, torch.float64)
                and _kernels.use_kernels(x, edge_attr, weight, edge_index)):
            return uvu_scatter(x, edge_attr, weight, edge_index.long(), num_nodes, self._dim_mid, self._metadata)
        return self.reference(x, edge_attr, weight, edge_index, num_nodes)

    def reference(self, x: torch.Tensor, edge_attr: torch.Tensor, weight: torch.Tensor, edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
        """The torch implementation (fallback and test reference); same arguments as forward."""
        source, target = edge_index[0], edge_index[1]
        num_edges = source.shape[0]
        weights = weight.split(self._weight_split, dim=-1)
        outputs = []
        for i, (x_block, (mul, d1, rows, block_runs, groups)) in enumerate(zip(x.split(self._in_split, dim=-1), self._blocks)):
            if rows == 0:
                continue
            cg = getattr(self, f"_cg{i}").to(dtype=edge_attr.dtype)
            coupling = (edge_attr @ cg).view(num_edges, rows, d1)  # M[e]: (rows, d1)
            x_block = x_block.reshape(x.shape[0], mul, d1).transpose(1, 2).contiguous()  # (N, d1, mul)
            gathered = x_block.index_select(0, source)  # (E, d1, mul)
            if d1 == 1:
                products = coupling * gathered  # (E, rows, mul)
            elif rows == 1:  # scalar outputs only: E tiny (1 x d1) @ (d1 x mul) products are slow as bmm
                products = (coupling.transpose(1, 2) * gathered).sum(1, keepdim=True)
            else:
                products = torch.bmm(coupling, gathered)  # (E, rows, mul)
            for part, (count, d3), r in zip(products.split([c * d for c, d in groups], dim=1), groups, block_runs):
                part = part.reshape(num_edges, count, d3, mul) * weights[r].view(num_edges, count, 1, mul)
                part = part.reshape(num_edges, count * d3 * mul)
                outputs.append(part.new_zeros(num_nodes, count * d3 * mul).index_add(0, target, part))
        if not outputs:
            return x.new_zeros(num_nodes, self._dim_mid)
        out = torch.cat(outputs, dim=-1)
        return out if self._identity_mid else out.index_select(-1, self._mid_index)
