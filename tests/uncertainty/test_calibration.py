"""Calibration on synthetic data whose error scale is known: the fitted factor, the curve, the ranking."""
from __future__ import annotations

import numpy as np
import pytest

from equiscale.uncertainty.calibration import calibrate, calibration_curve, fit_scale, gaussian_nll, spearman


def synthetic(scale: float, samples: int = 20000, components: int = 3, seed: int = 0):
    """Spreads spanning two decades and errors drawn from N(0, (scale * sigma)^2) per component."""
    rng = np.random.default_rng(seed)
    sigma = np.exp(rng.uniform(np.log(0.01), np.log(1.0), samples))
    errors = scale * sigma[:, None] * rng.standard_normal((samples, components))
    return errors, sigma


@pytest.mark.parametrize("scale", [0.3, 2.5, 40.0])
def test_the_fitted_scale_recovers_the_known_error_scale(scale):
    errors, sigma = synthetic(scale)
    fitted = fit_scale(errors, sigma)
    assert abs(fitted / scale - 1) < 0.02  # 60000 components: the estimate's relative error is ~0.3 %
    assert gaussian_nll(errors, sigma, fitted) < gaussian_nll(errors, sigma, 1.5 * fitted)
    assert gaussian_nll(errors, sigma, fitted) < gaussian_nll(errors, sigma, fitted / 1.5)


def test_the_calibration_curve_lies_on_the_diagonal_after_the_fit():
    errors, sigma = synthetic(2.5)
    result = calibrate(errors, sigma, bins=8)
    expected, observed = np.array(result.curve["expected"]), np.array(result.curve["observed"])
    assert len(expected) == 8 and sum(result.curve["count"]) == len(sigma)
    assert np.all(np.diff(expected) > 0)  # bins ordered by spread
    np.testing.assert_allclose(observed, expected, rtol=0.08)
    assert result.nll < result.nll_raw
    assert abs(result.rms_sigma / result.rms_error - 1) < 0.02


def test_an_uncalibrated_scale_shows_in_the_curve():
    errors, sigma = synthetic(2.5)
    curve = calibration_curve(errors, sigma, scale=1.0, bins=5)
    np.testing.assert_allclose(curve["observed"] / curve["expected"], 2.5, rtol=0.08)


def test_rank_correlation_tells_an_informative_spread_from_noise():
    errors, sigma = synthetic(1.0)
    assert spearman(errors, sigma) > 0.5
    shuffled = np.random.default_rng(1).permutation(sigma)
    assert abs(spearman(errors, shuffled)) < 0.05


def test_bad_inputs_are_refused_in_one_line():
    with pytest.raises(ValueError, match="same first dimension"):
        fit_scale(np.zeros((4, 3)), np.ones(5))
    with pytest.raises(ValueError, match="must be positive"):
        fit_scale(np.ones(3), np.array([1.0, 0.0, 1.0]))
