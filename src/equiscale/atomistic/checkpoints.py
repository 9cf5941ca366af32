"""Loading a trained potential from a training checkpoint (``best.pt`` or ``last.pt``)."""
from __future__ import annotations

import os
from typing import Any

import torch

from equiscale.atomistic.data import resolve_dtype
from equiscale.atomistic.model import EquivariantPotential

__all__ = ["load_potential"]


def load_potential(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None,
                   ema: bool = True) -> EquivariantPotential:
    """The potential stored in a checkpoint written by ``train potential``, in eval mode.

    Args:
        path: ``DIR/best.pt`` or ``DIR/last.pt``.
        device: where to put it.
        dtype: ``"float32"``/``"float64"``; default: the dtype it was trained in.
        ema: use the moving average of the weights (default) rather than the last weights.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated or corrupt, or not a potential's checkpoint (the message
            says which).
    """
    from equiscale.train import load_checkpoint

    state = load_checkpoint(path, map_location="cpu")
    extra: dict[str, Any] = state.get("extra") or {}
    if "model_config" not in extra or "model" not in state:
        raise ValueError(f"checkpoint {path} does not hold an equiscale potential (no model settings or weights)")
    model = EquivariantPotential(**extra["model_config"])
    prefix = "ema." if ema and any(k.startswith("ema.") for k in state["model"]) else "model."
    weights = {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    if not weights:
        weights = state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(f"checkpoint {path}: the weights do not fit the stored model settings: {error}") from error
    target = resolve_dtype(dtype if dtype is not None else extra.get("dtype", "float32"))
    return model.to(device=device, dtype=target).eval()
