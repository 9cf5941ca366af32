"""Tensor expansion: irreps coefficients -> atomic-orbital matrix blocks through Clebsch-Gordan.

The block of a matrix between a shell of angular momentum ``l1`` (parity ``p1``) on one atom and a
shell ``l2`` (``p2``) on another transforms as ``D^{l1}(R) B D^{l2}(R)^T``. Such a block is a sum
over the irreps ``L = |l1 - l2| .. l1 + l2`` (each of parity ``p1 p2``) of ``l1 x l2``:

    B[m1, m2] = sum_L sqrt(2L + 1) sum_M C^{l1 l2 L}[m1, m2, M] f_L[M]

with ``C = o3.wigner_3j(l1, l2, L)`` (Frobenius norm 1, so the factor makes the map an orthogonal
change of basis). Because ``C`` is invariant under ``D^{l1} x D^{l2} x D^L``, coefficients ``f_L``
that rotate as ``D^L`` give blocks that rotate as ``D^{l1} B D^{l2}^T``: equivariance is exact by
construction, to the rounding of the float64 coefficients.

:class:`TensorExpansion` does this for a whole atom pair at once: rows are the AOs of one atom
(one irrep per shell, e.g. ``"0e+0e+1o"`` for O in STO-3G), columns those of another, and the
coefficients are the sorted, simplified :attr:`TensorExpansion.irreps_out` (what an ``o3.Linear``
produces). The map is one fixed orthogonal matrix, so :meth:`TensorExpansion.project` inverts it.
"""
from __future__ import annotations

import math
import torch
from torch import nn

from equiscale import o3

__all__ = ["block_irreps", "TensorExpansion", "expansion_matrix"]


def block_irreps(ir1: o3.Irrep, ir2: o3.Irrep) -> list[o3.Irrep]:
    """The irreps of ``ir1 x ir2``: ``L = |l1 - l2| .. l1 + l2``, each of parity ``p1 p2``."""
    return list(o3.Irrep(ir1) * o3.Irrep(ir2))


def _entries(rows: o3.Irreps, cols: o3.Irreps) -> list[tuple[int, int, o3.Irrep]]:
    """(row shell, column shell, L) for every irrep of every shell pair, in that order."""
    row_irs = [ir for mul, ir in rows for _ in range(mul)]
    col_irs = [ir for mul, ir in cols for _ in range(mul)]
    return [(a, b, ir) for a, ir1 in enumerate(row_irs) for b, ir2 in enumerate(col_irs) for ir in block_irreps(ir1, ir2)]


def expansion_matrix(rows: o3.Irreps | str, cols: o3.Irreps | str) -> tuple[o3.Irreps, torch.Tensor]:
    """The coefficient irreps and the float64 matrix ``E (rows.dim * cols.dim, irreps.dim)``.

    ``block.flatten() = E @ coefficients`` with ``coefficients`` in the ``mul_ir`` layout of the
    returned irreps (sorted and simplified). ``E`` is orthogonal: ``coefficients = E.T @ block.flatten()``.
    """
    rows, cols = o3.Irreps(rows), o3.Irreps(cols)
    entries = _entries(rows, cols)
    irreps, permutation, _ = o3.Irreps([(1, ir) for _, _, ir in entries]).sort()
    order = sorted(range(len(entries)), key=lambda k: permutation[k])  # entries in sorted position order
    row_irs = [ir for mul, ir in rows for _ in range(mul)]
    col_irs = [ir for mul, ir in cols for _ in range(mul)]
    row_start = [sum(ir.dim for ir in row_irs[:a]) for a in range(len(row_irs))]
    col_start = [sum(ir.dim for ir in col_irs[:b]) for b in range(len(col_irs))]
    matrix = torch.zeros(rows.dim, cols.dim, irreps.dim, dtype=torch.float64)
    offset = 0
    for k in order:
        a, b, ir = entries[k]
        l1, l2 = row_irs[a].l, col_irs[b].l
        cg = o3.wigner_3j(l1, l2, ir.l, dtype=torch.float64) * math.sqrt(ir.dim)
        matrix[row_start[a]:row_start[a] + 2 * l1 + 1, col_start[b]:col_start[b] + 2 * l2 + 1, offset:offset + ir.dim] = cg
        offset += ir.dim
    return irreps.simplify(), matrix.reshape(rows.dim * cols.dim, irreps.dim)


class TensorExpansion(nn.Module):
    """Coefficients ``(..., irreps_out.dim)`` -> blocks ``(..., rows.dim, cols.dim)`` (and back).

    Args:
        rows: AO irreps of the row atom (one irrep per shell).
        cols: AO irreps of the column atom.

    The matrix stays a float64 attribute (not a buffer: ``module.float().double()`` would round it);
    :meth:`forward` uses a copy in the coefficients' dtype and device.
    """

    def __init__(self, rows: o3.Irreps | str, cols: o3.Irreps | str) -> None:
        super().__init__()
        self.rows, self.cols = o3.Irreps(rows), o3.Irreps(cols)
        self.irreps_out, matrix = expansion_matrix(self.rows, self.cols)
        self.matrix = matrix
        self._shape = (self.rows.dim, self.cols.dim)
        self._cast: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def _matrix(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = self.matrix.to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Blocks ``(..., rows.dim, cols.dim)`` from coefficients ``(..., irreps_out.dim)``."""
        flat = coefficients @ self._matrix(coefficients).T
        return flat.reshape(*coefficients.shape[:-1], *self._shape)

    def project(self, blocks: torch.Tensor) -> torch.Tensor:
        """Coefficients ``(..., irreps_out.dim)`` of blocks ``(..., rows.dim, cols.dim)`` (the inverse map)."""
        flat = blocks.reshape(*blocks.shape[:-2], self._shape[0] * self._shape[1])
        return flat @ self._matrix(blocks)

    def extra_repr(self) -> str:
        return f"({self.rows}) x ({self.cols}) <- {self.irreps_out}"
