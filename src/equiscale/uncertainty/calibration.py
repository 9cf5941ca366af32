"""Calibrating a predicted uncertainty against observed errors, and measuring how well it ranks them.

A committee's spread ``sigma`` is a relative measure of the error; one scale factor ``s`` turns it
into an error estimate. The estimator is maximum likelihood under the Gaussian model
``error ~ N(0, (s sigma)^2)`` for every component of every sample:

    s^2 = mean over samples i and components c of error_ic^2 / sigma_i^2

(the closed-form optimum of the negative log-likelihood). Errors of shape ``(n, ...)`` share the
``sigma`` of their sample (``(n,)``): e.g. the three force components of one atom and that atom's
force spread. The calibration curve bins the samples by predicted ``sigma`` (equal counts per bin)
and compares, in each bin, the expected RMS error ``s * rms(sigma)`` with the observed RMS error;
a calibrated model lies on the diagonal. The Spearman rank correlation between ``sigma`` and each
sample's RMS error says whether the uncertainty orders the errors, whatever its scale.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Calibration", "fit_scale", "gaussian_nll", "calibration_curve", "spearman", "calibrate", "calibration_plot"]


def _pairs(errors: Any, sigma: Any) -> tuple[np.ndarray, np.ndarray]:
    """(mean squared error per sample (n,), sigma (n,)) as float64, checked."""
    errors = np.asarray(errors, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1)
    if errors.ndim == 0 or errors.shape[0] != sigma.shape[0]:
        raise ValueError(f"errors {errors.shape} and sigma {sigma.shape} must have the same first dimension")
    if sigma.size == 0:
        raise ValueError("no samples to calibrate on")
    squared = (errors.reshape(errors.shape[0], -1) ** 2).mean(axis=1)
    keep = np.isfinite(squared) & np.isfinite(sigma)
    if not np.all(sigma[keep] > 0):
        raise ValueError("predicted sigma must be positive (a committee whose members agree exactly has no spread)")
    return squared[keep], sigma[keep]


def fit_scale(errors: Any, sigma: Any) -> float:
    """The maximum-likelihood scale ``s`` of ``error ~ N(0, (s sigma)^2)``: ``sqrt(mean(error^2 / sigma^2))``.

    Args:
        errors: observed errors ``(n, ...)`` (prediction - reference).
        sigma: predicted standard deviation per sample ``(n,)``.
    """
    squared, sigma = _pairs(errors, sigma)
    return float(math.sqrt((squared / sigma**2).mean()))


def gaussian_nll(errors: Any, sigma: Any, scale: float = 1.0) -> float:
    """Mean negative log-likelihood per component of the errors under ``N(0, (scale sigma)^2)``."""
    squared, sigma = _pairs(errors, sigma)
    variance = (scale * sigma) ** 2
    return float((0.5 * np.log(2 * math.pi * variance) + 0.5 * squared / variance).mean())


def calibration_curve(errors: Any, sigma: Any, scale: float = 1.0, bins: int = 10) -> dict[str, np.ndarray]:
    """Expected against observed RMS error in bins of predicted sigma (equal counts per bin).

    Returns:
        ``expected`` (``scale`` x RMS sigma), ``observed`` (RMS error) and ``count`` per bin, each ``(bins,)``
        (fewer bins when there are fewer samples).
    """
    squared, sigma = _pairs(errors, sigma)
    order = np.argsort(sigma, kind="stable")
    groups = [g for g in np.array_split(order, max(1, min(bins, len(order)))) if len(g)]
    return {"expected": np.array([scale * math.sqrt((sigma[g] ** 2).mean()) for g in groups]),
            "observed": np.array([math.sqrt(squared[g].mean()) for g in groups]),
            "count": np.array([len(g) for g in groups])}


def spearman(errors: Any, sigma: Any) -> float:
    """Spearman rank correlation between the predicted sigma and the RMS error of each sample."""
    from scipy.stats import spearmanr

    squared, sigma = _pairs(errors, sigma)
    if len(sigma) < 2:
        return float("nan")
    return float(spearmanr(sigma, np.sqrt(squared)).statistic)


@dataclass
class Calibration:
    """The result of :func:`calibrate`.

    Attributes:
        scale: the fitted factor ``s`` (multiply the spread by it to estimate the error).
        spearman: rank correlation between spread and error.
        nll_raw: mean Gaussian NLL per component with the raw spread (``s = 1``).
        nll: the same with the fitted scale.
        rms_error: RMS error over all components.
        rms_sigma: RMS of the calibrated spread ``s * sigma``.
        samples: how many samples were used.
        curve: :func:`calibration_curve` with the fitted scale (lists, JSON-ready).
    """

    scale: float
    spearman: float
    nll_raw: float
    nll: float
    rms_error: float
    rms_sigma: float
    samples: int
    curve: dict[str, list[float]]

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def calibrate(errors: Any, sigma: Any, bins: int = 10) -> Calibration:
    """Fit the scale on (``errors`` ``(n, ...)``, ``sigma`` ``(n,)``) and measure calibration and ranking."""
    squared, raw = _pairs(errors, sigma)
    scale = fit_scale(errors, sigma)
    curve = calibration_curve(errors, sigma, scale, bins)
    return Calibration(scale=scale, spearman=spearman(errors, sigma), nll_raw=gaussian_nll(errors, sigma),
                       nll=gaussian_nll(errors, sigma, scale), rms_error=float(math.sqrt(squared.mean())),
                       rms_sigma=float(scale * math.sqrt((raw**2).mean())), samples=int(len(raw)),
                       curve={k: [float(x) for x in v] for k, v in curve.items()})


def calibration_plot(curves: dict[str, dict[str, Any]], path: str | os.PathLike, unit: str = "", title: str = "") -> None:
    """Expected against observed RMS error per bin, one line per entry of ``curves`` (label -> curve), saved as PNG."""
    from equiscale.plotting import pyplot, save_png

    figure, axis = pyplot().subplots(figsize=(4.8, 4.4))
    high = 0.0
    for label, curve in curves.items():
        expected, observed = np.asarray(curve["expected"]), np.asarray(curve["observed"])
        axis.plot(expected, observed, "o-", ms=4, label=label)
        high = max(high, float(expected.max(initial=0)), float(observed.max(initial=0)))
    axis.plot([0, high], [0, high], color="0.6", lw=1, ls="--", label="calibrated")
    suffix = f" ({unit})" if unit else ""
    axis.set_xlabel(f"expected RMS error: scale x spread{suffix}")
    axis.set_ylabel(f"observed RMS error{suffix}")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    save_png(figure, path, dpi=110)
