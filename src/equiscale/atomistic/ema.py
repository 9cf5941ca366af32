"""Moved to :mod:`equiscale.train.ema`; kept as a re-export until the atomistic package switches."""
from equiscale.train.ema import EMAModel  # noqa: F401
