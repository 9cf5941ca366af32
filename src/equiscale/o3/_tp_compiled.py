"""Which compiled kernel runs a ``TensorProduct``, and the plan or metadata it needs.

Both functions take the product's live paths as tuples ``(k, i_in1, i_in2, i_out, mode,
has_weight, path_weight)`` (``k`` the instruction's index, ``offsets[k]`` its first weight), the
Clebsch-Gordan tensors by ``(l1, l2, l_out)`` in float64, and return None when their kernel does
not apply (then the PyTorch kernels run).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from equiscale._kernels import tensor_product as _tp_kernel
from equiscale.o3._irreps import Irreps

__all__ = ["uvw_plan", "uvu_metadata"]

Path = tuple  # (k, i_in1, i_in2, i_out, mode, has_weight, path_weight)


def uvw_plan(in1: Irreps, in2: Irreps, out: Irreps, paths: Sequence[Path], offsets: Sequence[int], cg: Dict,
             shared_weights: bool) -> Optional[_tp_kernel.UvwPlan]:
    """Plan of the compiled kernel when every path is a shared-weight ``uvw`` path
    (``FullyConnectedTensorProduct``), else None."""
    if not paths or not shared_weights:
        return None
    if any(mode != "uvw" or not has_weight for _, _, _, _, mode, has_weight, _ in paths):
        return None
    planned = []
    for k, i1, i2, io, _, _, path_weight in paths:
        ls = (in1[i1].ir.l, in2[i2].ir.l, out[io].ir.l)
        planned.append((i1, i2, io, offsets[k], cg[ls] * path_weight))
    return _tp_kernel.build_plan(in1, in2, out, planned)


def uvu_metadata(in1: Irreps, in2: Irreps, out: Irreps, paths: Sequence[Path], offsets: Sequence[int], cg: Dict,
                 shared_weights: bool) -> Optional[tuple]:
    """``(paths, in_blocks, cg_index, cg_value)`` of the compiled channelwise kernel
    (layout in ``_kernels/csrc/message_passing.cpp``) when every path is a weighted ``uvu``
    path with per-sample weights, second-input multiplicity one and l <= 7 (the kernel's
    limit), and every output block is reached; else None.

    Plain CPU tensors, kept as attributes rather than buffers: the kernel runs on CPU only, and
    ``Module.float()`` must not round the float64 coefficients. Several paths may share an output
    block (the kernel sums them); each path's coefficients are its 3j symbol times its ``path_weight``.
    """
    if not paths or shared_weights:
        return None
    for _, i1, i2, io, mode, has_weight, _ in paths:
        if mode != "uvu" or not has_weight or in2[i2].mul != 1 or max(in1[i1].ir.l, out[io].ir.l) > 7:
            return None
    reached = {io for _, _, _, io, _, _, _ in paths}
    if any(mul_ir.dim > 0 and o not in reached for o, mul_ir in enumerate(out)):
        return None  # the kernel writes only the blocks its paths reach
    s1, s2, so = in1.slices(), in2.slices(), out.slices()
    rows, starts, triples, values = [], [0], [], []
    for k, i1, i2, io, _, _, path_weight in paths:
        (m1, ir1), (_, ir2), (_, iro) = in1[i1], in2[i2], out[io]
        rows.append([s1[i1].start, m1, ir1.dim, s2[i2].start, ir2.dim, so[io].start, iro.dim, offsets[k]])
        c = cg[(ir1.l, ir2.l, iro.l)]
        nonzero = (c.abs() > 1e-14).nonzero()
        triples.append(nonzero.reshape(-1))
        values.append(c[tuple(nonzero.t())] * path_weight)
        starts.append(starts[-1] + nonzero.shape[0])
    in_blocks = torch.tensor([[s.start, mul, ir.dim] for s, (mul, ir) in zip(s1, in1)], dtype=torch.long).reshape(-1, 3)
    cg_index = torch.cat([torch.tensor(starts, dtype=torch.long)] + triples)
    return (torch.tensor(rows, dtype=torch.long).reshape(-1, 8), in_blocks, cg_index, torch.cat(values).to(torch.float64))
