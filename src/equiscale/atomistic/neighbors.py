"""Neighbour lists through vesin: every pair of atoms closer than a cutoff, periodic images included.

Convention (the one ``nn.points.MessagePassing`` uses): an edge ``e`` carries a message from its
source ``j = edge_index[0, e]`` to its target ``i = edge_index[1, e]``, and its vector is

    r_e = positions[j] - positions[i] + shifts[e] @ cell

with ``shifts`` the integer numbers of cell vectors between atom j's image and atom i. The list is
full (both ``i -> j`` and ``j -> i``), and holds an atom's own periodic images when the cell is
smaller than the cutoff; an atom is never its own neighbour at zero shift.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["neighbor_list"]


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray | None, pbc: np.ndarray | bool, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs closer than ``cutoff`` (Angstrom) in any cell, with their periodic shifts.

    Args:
        positions: ``(N, 3)`` Angstrom.
        cell: ``(3, 3)`` lattice vectors as rows (ignored along non-periodic directions; None or
            zeros for a molecule).
        pbc: periodic along each lattice vector, ``(3,)`` or one bool.
        cutoff: the cutoff radius, positive.

    Returns:
        ``edge_index`` ``(2, E)`` int64 ``[source, target]`` sorted by target, and ``shifts``
        ``(E, 3)`` float64 (integer values).
    """
    import vesin

    cutoff = float(cutoff)
    if not (cutoff > 0 and math.isfinite(cutoff)):
        raise ValueError(f"cutoff must be a positive finite number of Angstrom, got {cutoff!r}")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {positions.shape}")
    if not np.isfinite(positions).all():
        raise ValueError("positions hold NaN or infinite values")
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    box = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if pbc.any() and abs(np.linalg.det(box)) < 1e-9:
        raise ValueError(f"pbc={pbc.tolist()} needs a cell of non-zero volume")
    if not pbc.any():
        box = np.zeros((3, 3))
    if len(positions) == 0:
        return np.zeros((2, 0), dtype=np.int64), np.zeros((0, 3))
    calculator = vesin.NeighborList(cutoff=cutoff, full_list=True, sorted=False)
    i, j, shifts = calculator.compute(positions, box, [bool(p) for p in pbc], quantities="ijS", copy=True)
    i, j = i.astype(np.int64), j.astype(np.int64)
    shifts = shifts.astype(np.float64)
    order = np.lexsort((j, i))  # by target i, then source j: deterministic
    return np.stack([j[order], i[order]]), shifts[order]
