"""State-dict compatibility with e3nn 0.6's ``TensorProduct``.

e3nn stores the 3j symbols its generated code uses (and the index pairs of the ``u<v`` modes)
as buffers of a submodule ``_compiled_main_left_right``, so they appear in its state dicts.
``e3nn_constants`` builds a module with the same buffer names, shapes and dtypes; our kernels do
not read them (they keep float64 coefficients of their own), they only make ``state_dict``
keys identical in both directions.
"""
from __future__ import annotations

from typing import Sequence

import torch

from equiscale.o3._wigner import wigner_3j

__all__ = ["e3nn_constants"]


def _specialized(mode: str, has_weight: bool, l1: int, l2: int, lo: int) -> bool:
    """Whether e3nn 0.6 writes this path without a 3j tensor (its ``specialized_code``)."""
    if mode not in ("uvw", "uvu", "uvv", "uuw", "uuu"):
        return False
    if not has_weight and mode not in ("uvv", "uuu"):
        return False
    return l1 == 0 or l2 == 0 or lo == 0 or (mode == "uuu" and (l1, l2, lo) == (1, 1, 1))


def e3nn_constants(irreps_in1, irreps_in2, irreps_out, instructions: Sequence) -> torch.nn.Module:
    """Module holding e3nn's ``_w3j_{l1}_{l2}_{l3}`` and ``_triu_indices_{mul}`` buffers."""
    mod = torch.nn.Module()
    for ins in instructions:
        (m1, ir1), (m2, ir2), (mo, iro) = (irreps_in1[ins.i_in1], irreps_in2[ins.i_in2],
                                           irreps_out[ins.i_out])
        if 0 in ins.path_shape or m1 * ir1.dim == 0 or m2 * ir2.dim == 0 or mo * iro.dim == 0:
            continue
        if ins.connection_mode in ("uvu<v", "u<vw"):
            name = f"_triu_indices_{m1}"
            if not hasattr(mod, name):
                mod.register_buffer(name, torch.triu_indices(m1, m1, 1))
        if not _specialized(ins.connection_mode, ins.has_weight, ir1.l, ir2.l, iro.l):
            name = f"_w3j_{ir1.l}_{ir2.l}_{iro.l}"
            if not hasattr(mod, name):
                mod.register_buffer(name, wigner_3j(ir1.l, ir2.l, iro.l))
    return mod
