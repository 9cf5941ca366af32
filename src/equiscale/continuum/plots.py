"""PNG figures of fluid rollouts (matplotlib, the ``plot`` extra; imported only when drawing)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from equiscale.plotting import pyplot, save_png

__all__ = ["plot_rollout", "plot_error_curves", "plot_data_efficiency"]


def plot_rollout(truth: np.ndarray, prediction: np.ndarray, steps: Sequence[int], path: str | os.PathLike,
                 title: str = "") -> None:
    """Rows: truth, prediction, error; one column per rollout step in ``steps``. Arrays ``[T + 1, R, R]``."""
    plt = pyplot()
    steps = [s for s in steps if s < len(truth)]
    fig, axes = plt.subplots(3, len(steps), figsize=(2.2 * len(steps), 6.6), squeeze=False)
    limit = float(np.abs(truth[steps]).max())
    error_limit = max(float(np.abs(prediction[steps] - truth[steps]).max()), 1e-12)
    for column, step in enumerate(steps):
        panels = [(truth[step], limit, "RdBu_r"), (prediction[step], limit, "RdBu_r"),
                  (prediction[step] - truth[step], error_limit, "PuOr_r")]
        for row, (image, vmax, cmap) in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(image, origin="lower", cmap=cmap, vmin=-vmax, vmax=vmax)  # y grows upwards
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"step {step}")
        axes[0, 0].set_ylabel("truth")
        axes[1, 0].set_ylabel("prediction")
        axes[2, 0].set_ylabel("error")
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)


def plot_error_curves(curves: dict[str, np.ndarray], path: str | os.PathLike, title: str = "",
                      styles: dict[str, tuple[str, str]] | None = None) -> None:
    """Relative L2 error against rollout step, one line per label (arrays ``[steps]``, step 1 first).

    ``styles[label] = (series, variant)``: one colour per series (e.g. the model), one line style per
    variant (e.g. the data fraction); labels without a style are drawn dashed in grey.
    """
    plt = pyplot()
    styles = styles or {}
    series = sorted({s for s, _ in styles.values()})
    variants = sorted({v for _, v in styles.values()})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    dashes = ["-", "--", ":", "-."]
    fig, axis = plt.subplots(figsize=(6.5, 4.5))
    for label, errors in curves.items():
        if label in styles:
            s, v = styles[label]
            style = {"color": colours[series.index(s) % len(colours)], "linestyle": dashes[variants.index(v) % len(dashes)]}
        else:
            style = {"color": "grey", "linestyle": (0, (1, 3)), "linewidth": 2}
        axis.plot(np.arange(1, len(errors) + 1), errors, label=label, **style)
    axis.set_xlabel("rollout step")
    axis.set_ylabel("relative L2 error")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title(title)
    fig.tight_layout()
    save_png(fig, path)


def plot_data_efficiency(rows: list[dict], path: str | os.PathLike, metric: str = "rollout_25") -> None:
    """``metric`` against the fraction of training trajectories, one line per model: the mean over
    runs of the same model and fraction, with bars from the lowest to the highest run."""
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(5, 4))
    for model in sorted({r["model"] for r in rows}):
        fractions = sorted({r["fraction"] for r in rows if r["model"] == model})
        values = [[r[metric] for r in rows if r["model"] == model and r["fraction"] == f] for f in fractions]
        mean = np.array([np.mean(v) for v in values])
        spread = np.array([[m - min(v) for m, v in zip(mean, values)], [max(v) - m for m, v in zip(mean, values)]])
        axis.errorbar(fractions, mean, yerr=spread, marker="o", capsize=3, label=model)
    axis.set_xscale("log")
    axis.set_xlabel("fraction of training trajectories")
    axis.set_ylabel(metric.replace("_", " at step ").replace("rollout", "rollout error"))
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    save_png(fig, path)
