"""Figures for every application: matplotlib on a file backend, PNGs written atomically.

matplotlib is the optional ``plot`` extra and is imported only when a figure is drawn.
"""
from __future__ import annotations

import os
from typing import Any

__all__ = ["pyplot", "save_png"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend; ValueError naming the extra if missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ValueError("figures need matplotlib: pip install 'equiscale[plot]' (or pass --no-figures)") from error
    return plt


def save_png(figure: Any, path: str | os.PathLike, dpi: int = 100) -> None:
    """Write ``figure`` to ``path`` as PNG atomically (a temporary file, then ``os.replace``) and close it.

    The folder of ``path`` is created if needed.
    """
    plt = pyplot()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{os.fspath(path)}.tmp.png"
    try:
        figure.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        if os.path.exists(tmp):
            os.unlink(tmp)
