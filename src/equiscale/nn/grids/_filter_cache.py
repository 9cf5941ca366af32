"""Serve an expanded convolution filter from a cache when it cannot have changed.

Grid layers keep a small learned tensor and expand it to a full filter (group copies, or a
combination of basis kernels). Training needs the expansion inside autograd on every forward;
inference needs it once. :class:`FilterCache` rebuilds it whenever a weight gradient is needed
and otherwise keys the cached result on the version counters, storage, dtype and device of the
tensors it depends on, so an in-place update (optimizer step, ``load_state_dict``, ``.to()``)
invalidates it.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

__all__ = ["FilterCache"]


class FilterCache:
    """One cached ``(weight, bias)`` pair; not part of the module's state (rebuilt after loading)."""

    def __init__(self) -> None:
        self._key: Any = None
        self._value: Any = None

    def get(self, parameters: Sequence[Tensor | None], buffers: Sequence[Tensor | None],
            expand: Callable[[], Any]) -> Any:
        """``expand()``, or its cached result when no parameter needs a gradient and none has changed."""
        tensors = [t for t in parameters if t is not None]
        if torch.compiler.is_compiling():  # traced once into the graph; version counters and data_ptr do not trace
            return expand()
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            self.clear()
            return expand()
        depends = tensors + [t for t in buffers if t is not None]
        key = (tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in depends), torch.is_inference_mode_enabled())
        if self._value is None or self._key != key:
            with torch.no_grad():
                self._value = expand()
            self._key = key
        return self._value

    def clear(self) -> None:
        """Drop the cached filter."""
        self._key, self._value = None, None
