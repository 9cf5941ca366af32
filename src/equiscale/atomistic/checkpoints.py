"""Loading a trained potential from a training checkpoint (``best.pt`` or ``last.pt``).

The checkpoint's header (kind ``"potential"``) holds the training settings and the data statistics;
the architecture is rebuilt from them and the weights loaded: the moving average of the weights
when the run kept one (``state["ema"]``), else the trained weights.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from equiscale.atomistic.data import resolve_dtype
from equiscale.atomistic.model import EquivariantPotential

__all__ = ["load_potential", "potential_from_state"]


def potential_from_state(state: dict[str, Any], ema: bool = True, source: str | os.PathLike = "checkpoint") -> EquivariantPotential:
    """The float32 potential of a loaded checkpoint ``state`` (with its ``"header"``), weights loaded.

    Raises:
        ValueError: the header lacks the statistics, or the weights do not fit its settings.
    """
    from equiscale.atomistic.training import potential_from
    from equiscale.train import inference_weights

    header = state["header"]
    statistics = header.get("statistics") or {}
    if "elements" not in statistics:
        raise ValueError(f"{source}: the checkpoint header holds no data statistics (elements, reference energies)")
    model = potential_from(header.get("settings") or {}, statistics)
    weights = inference_weights(state) if ema else state.get("model")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{source}: the weights do not fit the stored model settings: {error}") from error
    return model


def load_potential(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None,
                   ema: bool = True) -> EquivariantPotential:
    """The potential stored in a checkpoint written by ``train potential``, in eval mode.

    Args:
        path: ``DIR/best.pt`` or ``DIR/last.pt``.
        device: where to put it.
        dtype: ``"float32"``/``"float64"``; default: the dtype it was trained in.
        ema: use the moving average of the weights when the run kept one (default) rather than the
            last trained weights.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an equiscale checkpoint, is truncated, is of another kind or a
            newer format, or its weights do not fit (one line saying which).
    """
    from equiscale.train import load_checkpoint

    state = load_checkpoint(path, kind="potential", map_location="cpu")
    model = potential_from_state(state, ema=ema, source=path)
    target = resolve_dtype(dtype if dtype is not None else state["header"].get("dtype", "float32"))
    return model.to(device=device, dtype=target).eval()
