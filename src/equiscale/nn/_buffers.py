"""Optional constant tensors of a module: a buffer when there is one, a plain ``None`` otherwise.

``torch.export`` (non-strict, its default) miscounts buffers registered as ``None`` and fails with an
``IndexError``; a plain ``None`` attribute exports, and a real tensor still follows ``module.to``.
"""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["set_optional_buffer"]


def set_optional_buffer(module: nn.Module, name: str, tensor: Tensor | None, persistent: bool = False) -> None:
    """``module.<name> = tensor`` as a buffer, or as a plain attribute when ``tensor`` is None."""
    if tensor is None:
        setattr(module, name, None)
    else:
        module.register_buffer(name, tensor, persistent=persistent)
