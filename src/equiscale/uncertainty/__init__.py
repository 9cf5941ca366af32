"""Uncertainty for every application: committees (``--ensemble N``), their mean and spread, calibration.

- :mod:`equiscale.uncertainty.committee`: :func:`train_committee`, how ``equiscale train TASK
  --ensemble N`` trains N members into ``DIR/member-K/`` and writes ``DIR/committee.json``.
- :mod:`equiscale.uncertainty.model`: :class:`Committee` (mean prediction and spread) and
  :func:`load_committee` (with the application's own loader of one member).
- :mod:`equiscale.uncertainty.calibration`: the maximum-likelihood scale factor, the calibration
  curve and plot, the Spearman rank correlation between spread and error.
- :mod:`equiscale.uncertainty.files`: the run directory's layout (light, no torch).

Names are imported on first use, so :mod:`equiscale.settings` can read ``committee.json`` without torch.
"""
from equiscale._lazy import lazy_attributes

__all__ = ["Committee", "committee_members", "load_committee", "train_committee", "is_committee", "read_committee",
           "Calibration", "calibrate", "fit_scale", "calibration_curve", "calibration_plot", "spearman"]

_LAZY = {
    "Committee": "equiscale.uncertainty.model",
    "committee_members": "equiscale.uncertainty.model",
    "load_committee": "equiscale.uncertainty.model",
    "train_committee": "equiscale.uncertainty.committee",
    "is_committee": "equiscale.uncertainty.files",
    "read_committee": "equiscale.uncertainty.files",
    "Calibration": "equiscale.uncertainty.calibration",
    "calibrate": "equiscale.uncertainty.calibration",
    "fit_scale": "equiscale.uncertainty.calibration",
    "calibration_curve": "equiscale.uncertainty.calibration",
    "calibration_plot": "equiscale.uncertainty.calibration",
    "spearman": "equiscale.uncertainty.calibration",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
