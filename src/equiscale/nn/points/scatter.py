"""Scatter reductions over an index, in plain torch (no torch_scatter).

``scatter_sum(src, index, dim_size)`` adds the rows of ``src`` into ``dim_size`` buckets chosen by
``index``: ``out[index[e]] += src[e]``. It is built on ``Tensor.index_add``, whose derivative is a
gather (``index_select``), itself differentiable, so the reductions can be differentiated any
number of times (forces of an energy, and their derivatives during training).
"""
from __future__ import annotations

import torch

__all__ = ["scatter_sum", "scatter_mean"]


def _check(src: torch.Tensor, index: torch.Tensor, dim_size: int, dim: int) -> int:
    if not isinstance(src, torch.Tensor) or src.dim() == 0:
        raise ValueError(f"src must be a tensor with at least one axis, got {type(src).__name__}")
    if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"index must be a 1D integer tensor of shape (n,), got {getattr(index, 'shape', index)!r}")
    dim = dim % src.dim()
    if index.shape[0] != src.shape[dim]:
        raise ValueError(f"index has shape {tuple(index.shape)} but src has {src.shape[dim]} entries along dim {dim}")
    if not isinstance(dim_size, (int, torch.SymInt)) or dim_size < 0:  # SymInt: a size traced by torch.export
        raise ValueError(f"dim_size must be a non-negative int, got {dim_size!r}")
    return dim


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int, dim: int = 0) -> torch.Tensor:
    """Sum the slices of ``src`` along ``dim`` into the buckets ``index``.

    Args:
        src: ``(..., n, ...)``, with ``n`` entries along ``dim``.
        index: ``(n,)`` integers in ``[0, dim_size)``.
        dim_size: number of buckets (e.g. the number of nodes).
        dim: the axis of ``src`` that ``index`` runs along (default 0).

    Returns:
        ``(..., dim_size, ...)``: ``out[..., i, ...] = sum_{e : index[e] = i} src[..., e, ...]``;
        empty buckets are zero.
    """
    dim = _check(src, index, dim_size, dim)
    shape = list(src.shape)
    shape[dim] = dim_size
    return src.new_zeros(shape).index_add(dim, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim_size: int, dim: int = 0) -> torch.Tensor:
    """Average the slices of ``src`` along ``dim`` over the buckets ``index``.

    Same shapes as :func:`scatter_sum`; empty buckets are zero (not NaN).
    """
    dim = _check(src, index, dim_size, dim)
    total = scatter_sum(src, index, dim_size, dim)
    count = torch.zeros(dim_size, dtype=src.dtype, device=src.device).index_add_(
        0, index, torch.ones(index.shape[0], dtype=src.dtype, device=src.device)
    )
    shape = [1] * src.dim()
    shape[dim] = dim_size
    return total / count.clamp_min(1).reshape(shape)
