"""Small helpers shared by the group and representation modules (no state)."""
from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "as_int",
    "rotation_2d",
    "batched_kron",
    "batched_block_diag",
    "check_orthogonal",
]


def as_int(value: Any, what: str) -> int:
    """Return ``value`` as a Python int; raise ValueError naming ``what`` if it is not an integer."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got a bool ({value!r})")
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.dtype.is_floating_point or value.dtype.is_complex:
            raise ValueError(f"{what} must be an integer, got a tensor {value!r}")
        return int(value.item())
    if isinstance(value, numbers.Integral):
        return int(value)
    raise ValueError(f"{what} must be an integer, got {value!r}")


def rotation_2d(theta: Tensor) -> Tensor:
    """Counter-clockwise rotation matrices ``[[cos, -sin], [sin, cos]]``: (...) -> (..., 2, 2)."""
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def batched_kron(a: Tensor, b: Tensor) -> Tensor:
    """Kronecker product over the last two axes, broadcast over the leading ones.

    ``a`` (..., m, n) and ``b`` (..., p, q) give (..., m*p, n*q) with entry
    ``[i*p + k, j*q + l] = a[i, j] * b[k, l]`` (the order of :func:`torch.kron`).
    """
    m, n = a.shape[-2:]
    p, q = b.shape[-2:]
    out = a[..., :, None, :, None] * b[..., None, :, None, :]
    return out.reshape(out.shape[:-4] + (m * p, n * q))


def batched_block_diag(blocks: list[Tensor]) -> Tensor:
    """Block-diagonal matrix of square blocks (..., d_i, d_i), broadcast over leading axes."""
    batch = torch.broadcast_shapes(*(b.shape[:-2] for b in blocks))
    dim = sum(b.shape[-1] for b in blocks)
    dtype = blocks[0].dtype
    for b in blocks[1:]:
        dtype = torch.promote_types(dtype, b.dtype)
    out = blocks[0].new_zeros(batch + (dim, dim), dtype=dtype)
    i = 0
    for b in blocks:
        d = b.shape[-1]
        out[..., i : i + d, i : i + d] = b
        i += d
    return out


def check_orthogonal(m: Tensor, what: str, atol: float = 1e-8) -> None:
    """Raise ValueError naming ``what`` unless every matrix in ``m`` (..., d, d) is orthogonal."""
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"{what} must be square matrices (..., d, d), got shape {tuple(m.shape)}")
    if m.numel() == 0:
        return
    eye = torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
    err = (m.transpose(-1, -2) @ m - eye).abs().max().item()
    if not err <= atol:
        raise ValueError(f"{what} must be orthogonal (M^T M = I); max deviation is {err:.3g}")
