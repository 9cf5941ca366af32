"""Moved to :mod:`equiscale.fields.demo`; this name stays until the demo discovers the applications' sections."""
from equiscale.fields.demo import section_steerable

__all__ = ["section_steerable"]
