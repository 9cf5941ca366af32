"""What several benchmark scripts share: the machine's load, peak memory and smooth test inputs.

The scripts run as ``python benchmarks/NAME.py``, so this module is imported as ``_common``.
"""
from __future__ import annotations

import torch

__all__ = ["load_average", "peak_rss_mb", "plane_points", "gaussian_blobs"]


def load_average() -> str:
    """The 1-minute load average of the machine (``/proc/loadavg``), printed beside timings."""
    try:
        with open("/proc/loadavg") as file:
            return file.read().split()[0]
    except OSError:
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB (VmHWM: unlike ru_maxrss it does not carry over the
    parent's peak across fork + exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plane_points(size: int) -> torch.Tensor:
    """Coordinates ``(x, y)`` of a ``size x size`` grid centred on 0, shape ``(size, size, 2)``.

    x runs along the columns and y along the rows, as every 2D field of equiscale.
    """
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x, y], dim=-1)


def gaussian_blobs(points: torch.Tensor, centres: torch.Tensor, amplitudes: torch.Tensor, width: float) -> torch.Tensor:
    """``sum_i amplitudes[i] exp(-|p - c_i|^2 / 2 w^2)`` at ``points (*grid, d)``: shape ``(1, channels, *grid)``.

    ``centres`` is ``(blobs, d)``; ``amplitudes`` is ``(blobs, channels)`` (or ``(blobs,)`` for one channel).
    """
    if amplitudes.dim() == 1:
        amplitudes = amplitudes[:, None]
    d2 = ((points[..., None, :] - centres) ** 2).sum(-1)  # (*grid, blobs)
    field = torch.exp(-d2 / (2 * width**2)) @ amplitudes  # (*grid, channels)
    return field.movedim(-1, 0)[None]
