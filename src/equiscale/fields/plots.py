"""Figures of the field demonstrations (matplotlib through :func:`equiscale.plotting.pyplot`, imported
when a figure is drawn; written atomically by :func:`~equiscale.plotting.save_png`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_velocity_rollout", "plot_angles", "plot_efield_slice"]


def plot_velocity_rollout(truth: np.ndarray, predictions: dict[str, np.ndarray], steps: list[int], path: Path,
                           streamlines: bool) -> None:
    """Rows: truth, then prediction and error of each model; columns: rollout steps. Arrays ``[T + 1, 2, R, R]``;
    speed as colour, streamlines on top (x along columns, y upwards)."""
    from equiscale.plotting import pyplot, save_png

    plt = pyplot()
    rows = [("truth", truth, False)]
    for label, predicted in predictions.items():
        rows += [(f"{label}\nprediction", predicted, False), (f"{label}\nerror", predicted - truth, True)]
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(2.1 * len(steps) + 1.4, 2.0 * len(rows)), squeeze=False,
                             layout="constrained")
    speed_max = float(np.linalg.norm(truth[steps], axis=1).max())
    error_max = max([float(np.linalg.norm(r[1][steps], axis=1).max()) for r in rows if r[2]] + [1e-12])
    grid = np.arange(truth.shape[-1])
    for i, (label, field, is_error) in enumerate(rows):
        for j, step in enumerate(steps):
            axis = axes[i, j]
            speed = np.linalg.norm(field[step], axis=0)
            image = axis.imshow(speed, origin="lower", cmap="magma" if is_error else "viridis", vmin=0,
                                vmax=error_max if is_error else speed_max)
            if streamlines and not is_error:
                axis.streamplot(grid, grid, field[step, 0], field[step, 1], color="white", density=0.6, linewidth=0.5,
                                arrowsize=0.5)
            axis.set_xticks([])
            axis.set_yticks([])
            if i == 0:
                axis.set_title(f"step {step}")
            if j == 0:
                axis.set_ylabel(label, fontsize=7)
        fig.colorbar(image, ax=axes[i, :].tolist(), shrink=0.9, label="|error|" if is_error else "speed")
    fig.suptitle("velocity rollout from a held-out frame: speed and streamlines")
    save_png(fig, path, dpi=90)


def plot_angles(angles: list[float], curves: dict[str, list[float]], path: Path, title: str,
                 references: tuple[str, ...] = ()) -> None:
    """Equivariance error against rotation angle (degrees), one line per model; ``references`` grey."""
    from equiscale.plotting import pyplot, save_png

    plt = pyplot()
    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    dashes = iter(["--", ":", "-."])
    models = sorted(label for label in curves if label not in references)  # colours as in plot_error_curves
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for label, values in curves.items():
        style = ({"color": "grey", "linestyle": next(dashes)} if label in references
                 else {"marker": "o", "markersize": 3, "color": colours[models.index(label) % len(colours)]})
        axis.plot(angles, np.maximum(np.asarray(values), 1e-17), label=label, **style)
    axis.set_yscale("log")
    axis.set_xlabel("rotation angle (degrees)")
    axis.set_ylabel("relative equivariance error (interior)")
    axis.set_xticks(list(range(0, 91, 15)))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def plot_efield_slice(rho: np.ndarray, truth: np.ndarray, predictions: dict[str, np.ndarray], path: Path) -> None:
    """The middle z-slice: the density, |E| with in-plane arrows (truth, each model) and each model's |error|."""
    from equiscale.plotting import pyplot, save_png

    plt = pyplot()
    z = rho.shape[0] // 2
    columns = 2 + len(predictions)
    fig, axes = plt.subplots(2, columns, figsize=(2.3 * columns + 1.0, 5.0), squeeze=False, layout="constrained")
    limit = float(np.abs(rho[z]).max())
    axes[0, 0].imshow(rho[z], origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[0, 0].set_title("charge density", fontsize=8)
    magnitude_max = float(np.linalg.norm(truth[:, z], axis=0).max())
    errors = {k: np.linalg.norm(v[:, z] - truth[:, z], axis=0) for k, v in predictions.items()}
    error_max = max([float(e.max()) for e in errors.values()] + [1e-12])
    grid = np.arange(rho.shape[-1])
    stride = max(1, rho.shape[-1] // 12)
    for j, (label, field) in enumerate([("truth", truth)] + list(predictions.items()), start=1):
        axis = axes[0, j]
        top = axis.imshow(np.linalg.norm(field[:, z], axis=0), origin="lower", cmap="viridis", vmin=0,
                          vmax=magnitude_max)
        s = slice(None, None, stride)
        axis.quiver(grid[s], grid[s], field[0, z][s, s], field[1, z][s, s], color="white", scale_units="xy",
                    angles="xy", scale=magnitude_max / max(stride, 1) * 1.2, width=0.008)
        axis.set_title(f"|E| {label}", fontsize=8)
        if label in errors:
            image = axes[1, j].imshow(errors[label], origin="lower", cmap="magma", vmin=0, vmax=error_max)
            axes[1, j].set_title(f"|error| {label}", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    axes[1, 0].axis("off")
    axes[1, 1].axis("off")
    fig.colorbar(top, ax=axes[0, :].tolist(), shrink=0.9, label="|E|")
    if predictions:
        fig.colorbar(image, ax=axes[1, :].tolist(), shrink=0.9, label="|E error|")
    fig.suptitle(f"held-out sample, slice z = {z}: field magnitude, in-plane (E_x, E_y) arrows")
    save_png(fig, path, dpi=90)


# --- velocity ---------------------------------------------------------------------------------------
