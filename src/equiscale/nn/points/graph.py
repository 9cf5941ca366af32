"""Graphs of points: which pairs of points interact.

``radius_graph`` connects every pair of points closer than a cutoff, in plain torch, by brute force
(O(N^2) distances, computed in row blocks so memory stays bounded). It is meant for small
non-periodic systems (molecules, batches of them, tests). For periodic cells or large systems use a
neighbour-list library (vesin, through ``equiscale.atomistic``).
"""
from __future__ import annotations

import math

import torch

__all__ = ["edge_pairs", "radius_graph"]

_BLOCK_ELEMENTS = 1 << 22  # pairwise distances held at once (about 16 MB in float32)


def radius_graph(
    pos: torch.Tensor,
    r: float,
    batch: torch.Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = None,
) -> torch.Tensor:
    """All pairs of points at distance strictly less than ``r``.

    Args:
        pos: ``(N, D)`` point coordinates (any floating dtype; not differentiated through).
        r: the cutoff radius, a positive number.
        batch: optional ``(N,)`` integers naming the system each point belongs to; points of
            different systems are never connected. Need not be sorted.
        loop: also connect each point to itself.
        max_num_neighbors: if given, keep for each target only its ``max_num_neighbors`` nearest
            sources (ties broken arbitrarily); ``None`` keeps all.

    Returns:
        ``edge_index`` of shape ``(2, E)``, int64, rows ``[source, target]`` (a message flows from
        ``edge_index[0]`` to ``edge_index[1]``), sorted by target and then by source. Without
        ``max_num_neighbors`` the graph is symmetric: ``(j, i)`` is an edge whenever ``(i, j)`` is.

    Raises:
        ValueError: if ``pos`` is not ``(N, D)`` floating point or holds NaN/inf, if ``batch`` is
            not ``(N,)`` integers, or if ``r`` or ``max_num_neighbors`` is not positive.
    """
    if not isinstance(pos, torch.Tensor) or pos.dim() != 2 or not pos.is_floating_point():
        raise ValueError(f"pos must be a floating-point tensor of shape (N, D), got {getattr(pos, 'shape', pos)!r}")
    if not bool(torch.isfinite(pos).all()):
        raise ValueError("pos holds NaN or infinite coordinates")
    r = float(r)
    if not (r > 0 and math.isfinite(r)):
        raise ValueError(f"r must be a positive finite cutoff, got {r!r}")
    n = pos.shape[0]
    if batch is not None:
        if not isinstance(batch, torch.Tensor) or batch.shape != (n,) or batch.is_floating_point() or batch.is_complex():
            raise ValueError(f"batch must be an integer tensor of shape ({n},), got {getattr(batch, 'shape', batch)!r}")
        batch = batch.to(pos.device)
    if max_num_neighbors is not None and (not isinstance(max_num_neighbors, int) or max_num_neighbors < 1):
        raise ValueError(f"max_num_neighbors must be None or a positive int, got {max_num_neighbors!r}")

    pos = pos.detach()
    rows = max(1, _BLOCK_ELEMENTS // max(n, 1))
    sources, targets = [], []
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = pos[start:stop]
        d2 = (block.unsqueeze(1) - pos.unsqueeze(0)).pow(2).sum(-1)  # (targets, sources)
        mask = d2 < r * r
        if batch is not None:
            mask &= batch[start:stop].unsqueeze(1) == batch.unsqueeze(0)
        own = torch.arange(stop - start, device=pos.device)
        mask[own, own + start] = loop
        if max_num_neighbors is not None and max_num_neighbors < n:
            d2 = d2.masked_fill(~mask, math.inf)
            nearest, where = d2.topk(max_num_neighbors, dim=1, largest=False)
            mask = torch.zeros_like(mask).scatter_(1, where, torch.isfinite(nearest))
        target, source = mask.nonzero(as_tuple=True)  # row-major: sorted by target, then source
        sources.append(source)
        targets.append(target + start)
    if not sources:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    return torch.stack([torch.cat(sources), torch.cat(targets)]).long()


def edge_pairs(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group the edges by unordered node pair: ``j -> i`` and ``i -> j`` have the same length.

    For a graph without periodic images (edge vectors ``pos[j] - pos[i]``) anything that depends
    only on the edge length, such as a radial network, can then be evaluated once per pair.

    Args:
        edge_index: ``(2, E)`` integer ``[source, target]``.
        num_nodes: ``N`` (all indices below it).

    Returns:
        ``(representative (P,), inverse (E,))``: one edge of each pair, and each edge's pair, so
        that ``values[representative][inverse]`` equals ``values`` for any per-edge function of
        the unordered pair.
    """
    source, target = edge_index[0], edge_index[1]
    key = torch.minimum(source, target) * num_nodes + torch.maximum(source, target)
    _, inverse = torch.unique(key, return_inverse=True)
    count = int(inverse.max()) + 1 if inverse.numel() else 0
    representative = torch.empty(count, dtype=torch.long, device=key.device)
    representative.scatter_(0, inverse, torch.arange(key.shape[0], device=key.device))
    return representative, inverse
