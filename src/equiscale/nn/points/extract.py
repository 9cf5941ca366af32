"""e3nn's ``Extract`` and ``ExtractIr``: pick entries of an irreps tensor into one or more outputs."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from equiscale import o3
from equiscale.errors import InvalidArgumentError

__all__ = ["Extract", "ExtractIr"]


class Extract(nn.Module):
    """Copy chosen entries of ``irreps_in`` into each of the outputs ``irreps_outs``.

    Output ``k`` is the concatenation of the input's entries ``instructions[k]`` (indices into
    ``irreps_in``, one per entry of ``irreps_outs[k]``), so ``irreps_outs[k][j]`` must have the
    dimension of ``irreps_in[instructions[k][j]]``. Same arguments and numbers as
    ``e3nn.nn.Extract`` (0.6); each output is a new tensor (never a view of the input).

    Args:
        irreps_in: the irreps of the input.
        irreps_outs: the irreps of each output.
        instructions: one tuple of entry indices per output.
        squeeze_out: with a single output, return it as a tensor instead of a 1-tuple.

    Shapes: ``(..., irreps_in.dim)`` -> a tuple of ``(..., irreps_outs[k].dim)``.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps | str,
        irreps_outs: Sequence[o3.Irreps | str],
        instructions: Sequence[Sequence[int]],
        squeeze_out: bool = False,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_outs = tuple(o3.Irreps(irreps) for irreps in irreps_outs)
        self.instructions = [tuple(ins) for ins in instructions]
        self.squeeze_out = squeeze_out
        if len(self.irreps_outs) != len(self.instructions):
            raise InvalidArgumentError(
                f"Extract: {len(self.irreps_outs)} irreps_outs but {len(self.instructions)} instructions: give one per output"
            )
        starts = [s.start for s in self.irreps_in.slices()]
        self._slices: list[list[tuple[int, int]]] = []
        for k, (irreps_out, ins) in enumerate(zip(self.irreps_outs, self.instructions)):
            if len(irreps_out) != len(ins):
                raise InvalidArgumentError(
                    f"Extract: output {k} has {len(irreps_out)} entries ({irreps_out}) but its instruction {ins} has {len(ins)}"
                )
            pieces = []
            for (mul, ir), i in zip(irreps_out, ins):
                if not -len(self.irreps_in) <= i < len(self.irreps_in):
                    raise InvalidArgumentError(f"Extract: index {i} in instruction {ins} is out of range for {self.irreps_in}")
                if mul * ir.dim != self.irreps_in[i].dim:
                    raise InvalidArgumentError(
                        f"Extract: output {k} entry {mul}x{ir} cannot hold input entry {i} ({self.irreps_in[i]}): dimensions differ"
                    )
                pieces.append((starts[i % len(self.irreps_in)], mul * ir.dim))
            self._slices.append(_merge(pieces))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Extract the outputs.

        Args:
            x: the input, shape ``(..., irreps_in.dim)``.

        Returns:
            a tuple of tensors ``(..., irreps_outs[k].dim)`` (a tensor with ``squeeze_out`` and
            one output).
        """
        if x.dim() == 0 or x.shape[-1] != self.irreps_in.dim:
            raise InvalidArgumentError(f"input must have shape (..., {self.irreps_in.dim}) for {self.irreps_in}, got {tuple(x.shape)}")
        out = []
        for pieces in self._slices:
            if not pieces:
                out.append(x.new_zeros(x.shape[:-1] + (0,)))
            elif len(pieces) == 1:
                out.append(x.narrow(-1, pieces[0][0], pieces[0][1]).clone())  # a new tensor, as e3nn's
            else:
                out.append(torch.cat([x.narrow(-1, start, length) for start, length in pieces], dim=-1))
        if self.squeeze_out and len(out) == 1:
            return out[0]
        return tuple(out)


def _merge(pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join consecutive (start, length) slices that touch, dropping empty ones."""
    merged: list[tuple[int, int]] = []
    for start, length in pieces:
        if length == 0:
            continue
        if merged and merged[-1][0] + merged[-1][1] == start:
            merged[-1] = (merged[-1][0], merged[-1][1] + length)
        else:
            merged.append((start, length))
    return merged


class ExtractIr(Extract):
    """Extract every entry of ``irreps_in`` whose irrep is ``ir``, in order, into one tensor.

    Same arguments and numbers as ``e3nn.nn.ExtractIr`` (0.6); ``irreps_out`` holds the result's irreps.

    Args:
        irreps_in: the irreps of the input.
        ir: the irrep to extract, e.g. ``"1o"``.

    Shapes: ``(..., irreps_in.dim)`` -> ``(..., irreps_out.dim)``.
    """

    def __init__(self, irreps_in: o3.Irreps | str, ir: o3.Irrep | str) -> None:
        ir = o3.Irrep(ir)
        irreps_in = o3.Irreps(irreps_in)
        irreps_out = o3.Irreps([(mul, ir_) for mul, ir_ in irreps_in if ir_ == ir])
        instructions = [tuple(i for i, (_, ir_) in enumerate(irreps_in) if ir_ == ir)]
        super().__init__(irreps_in, [irreps_out], instructions, squeeze_out=True)
        self.irreps_out = irreps_out
