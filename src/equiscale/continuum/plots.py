"""PNG figures of fluid rollouts (matplotlib, the ``plot`` extra; imported only when drawing)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from equiscale.plotting import pyplot, save_png

__all__ = ["plot_rollout", "plot_error_curves", "plot_data_efficiency", "plot_spectra", "plot_enstrophy", "plot_shifts"]


def plot_rollout(truth: np.ndarray, prediction: np.ndarray, steps: Sequence[int], path: str | os.PathLike,
                 title: str = "") -> None:
    """Truth, prediction and error rows for each trajectory, one column per rollout step in ``steps``.

    Arrays ``[T + 1, R, R]`` (one trajectory) or ``[M, T + 1, R, R]`` (M trajectories, three rows
    each). Truth and prediction of a trajectory share one symmetric colour scale (colour bar on the
    right); each error panel has its own scale and colour bar, so a small early error stays visible.
    """
    plt = pyplot()
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.ndim == 3:
        truth, prediction = truth[None], prediction[None]
    steps = [s for s in steps if s < truth.shape[1]]
    rows = 3 * len(truth)
    fig, axes = plt.subplots(rows, len(steps), figsize=(2.5 * len(steps) + 0.6, 2.1 * rows), squeeze=False)
    for m in range(len(truth)):
        limit = max(float(np.abs(truth[m, steps]).max()), 1e-12)
        for column, step in enumerate(steps):
            error = prediction[m, step] - truth[m, step]
            error_limit = max(float(np.abs(error).max()), 1e-12)
            panels = [(truth[m, step], limit, "RdBu_r"), (prediction[m, step], limit, "RdBu_r"),
                      (error, error_limit, "PuOr_r")]
            for offset, (image, vmax, cmap) in enumerate(panels):
                axis = axes[3 * m + offset, column]
                shown = axis.imshow(image, origin="lower", cmap=cmap, vmin=-vmax, vmax=vmax)  # y grows upwards
                axis.set_xticks([])
                axis.set_yticks([])
                if offset == 2 and not np.abs(error).max() > 0:  # the initial frame: given, no error to scale
                    axis.text(0.5, 0.5, "0 (given)", ha="center", va="center", transform=axis.transAxes, fontsize=8)
                elif offset == 2 or column == len(steps) - 1:  # fields: one bar per row; errors: one per panel
                    bar = fig.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
                    bar.ax.tick_params(labelsize=6)
                if m == 0 and offset == 0:
                    axis.set_title(f"step {step}")
        for offset, label in enumerate(("truth", "prediction", "error")):
            axes[3 * m + offset, 0].set_ylabel(f"trajectory {m}\n{label}" if offset == 0 else label, fontsize=8)
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


def plot_data_efficiency(rows: list[dict], path: str | os.PathLike, metric: str = "rollout_25",
                         reference: float | None = None) -> None:
    """``metric`` against the fraction of training trajectories, one line per model: the mean over
    runs of the same model and fraction, with bars from the lowest to the highest run (the spread
    over seeds); ``reference`` (persistence's value) is drawn as a grey line."""
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(5, 4))
    if reference is not None:
        axis.axhline(reference, color="grey", linestyle=(0, (1, 3)), linewidth=2, label="persistence (no change)")
    for model in sorted({r["model"] for r in rows}):
        fractions = sorted({r["fraction"] for r in rows if r["model"] == model})
        values = [[r[metric] for r in rows if r["model"] == model and r["fraction"] == f] for f in fractions]
        mean = np.array([np.mean(v) for v in values])
        spread = np.array([[m - min(v) for m, v in zip(mean, values)], [max(v) - m for m, v in zip(mean, values)]])
        axis.errorbar(fractions, mean, yerr=spread, marker="o", capsize=3, label=model)
    axis.set_xscale("log")
    axis.set_xlabel("fraction of training trajectories")
    axis.set_ylabel(metric.replace("_", " at step ").replace("rollout", "rollout error"))
    axis.set_title("mean over seeds; bars: lowest to highest", fontsize=8)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def _colours(names: Sequence[str]) -> dict[str, str]:
    """Truth in black, the runs in the default cycle."""
    plt = pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    runs = [n for n in names if n != "truth"]
    return {"truth": "black", **{n: cycle[i % len(cycle)] for i, n in enumerate(runs)}}


def plot_spectra(physics: dict, path: str | os.PathLike) -> None:
    """Energy spectra E(k) of truth and each run, one panel per step of ``physics["times"]`` (log-log).

    ``physics``: ``{"k": [K], "times": [S], "spectra": {name: [S][K]}}`` as :mod:`.evaluate` writes it.
    """
    plt = pyplot()
    times = physics["times"]
    colours = _colours(list(physics["spectra"]))
    fig, axes = plt.subplots(1, len(times), figsize=(3.4 * len(times), 3.3), squeeze=False, sharey=True)
    k = np.asarray(physics["k"])
    for column, step in enumerate(times):
        axis = axes[0, column]
        for name, spectra in physics["spectra"].items():
            values = np.asarray(spectra[column])
            axis.loglog(k, np.where(values > 0, values, np.nan), color=colours[name], label=name,
                        linewidth=2.2 if name == "truth" else 1.2, linestyle="-" if name == "truth" else "--")
        axis.set_title(f"step {step}")
        axis.set_xlabel("wavenumber k")
        axis.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("energy spectrum E(k)")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def plot_enstrophy(physics: dict, path: str | os.PathLike) -> None:
    """Enstrophy ``mean(w^2)/2`` against rollout step, truth and each run (``physics["enstrophy"]``)."""
    plt = pyplot()
    colours = _colours(list(physics["enstrophy"]))
    fig, axis = plt.subplots(figsize=(6, 4))
    for name, values in physics["enstrophy"].items():
        axis.plot(np.arange(len(values)), values, color=colours[name], label=name,
                  linewidth=2.2 if name == "truth" else 1.2, linestyle="-" if name == "truth" else "--")
    axis.set_xlabel("rollout step")
    axis.set_ylabel("enstrophy mean(w^2)/2")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def plot_shifts(report: dict, path: str | os.PathLike, title: str = "") -> None:
    """A committee's error and calibrated predicted uncertainty against the shift and the step.

    Left: per row of ``report`` (:func:`equiscale.continuum.uncertainty.evaluate_fluid_committee`)
    the RMSE and the RMS of the calibrated spread over all pixels and steps. Right: both against the
    rollout step, one colour per row (error solid, predicted uncertainty dashed).
    """
    plt = pyplot()
    rows = report["rows"]
    fig, (bars, steps) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(rows))
    bars.bar(x - 0.2, [r["metrics"]["rmse"] for r in rows], 0.4, label="RMSE (observed)")
    bars.bar(x + 0.2, [r["metrics"]["sigma_rms"] for r in rows], 0.4, label="calibrated committee spread (predicted)")
    bars.set_xticks(x, [r["name"] for r in rows], fontsize=7)
    bars.set_ylabel("vorticity, RMS per pixel")
    bars.legend(fontsize=7)
    bars.grid(alpha=0.3, axis="y")
    colours = _colours([r["name"] for r in rows])
    for r in rows:
        error, sigma = r["metrics"]["error_curve"], r["metrics"]["sigma_curve"]
        t = np.arange(1, len(error) + 1)
        steps.plot(t, error, color=colours[r["name"]], label=f"{r['name']}: error")
        steps.plot(t, sigma, color=colours[r["name"]], ls="--", label=f"{r['name']}: predicted")
    steps.set_xlabel("rollout step")
    steps.set_ylabel("vorticity, RMS per pixel")
    steps.legend(fontsize=7)
    steps.grid(alpha=0.3)
    fig.suptitle(title or f"committee of {report['members']}: error and calibrated uncertainty", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
