"""Continuum scale: 2D fluid data (pseudo-spectral Navier-Stokes), rotation-equivariant surrogates,
rollouts, evaluation and figures.

``simulate_vorticity``, ``random_vorticity``, ``taylor_green_vorticity``, ``velocity``: the simulator
(imported on first use, so that the light :mod:`.app` declaration does not load torch).
``load_fluid``, ``save_fluid``, ``generate_fluid``, ``FluidData``: the ``.npz`` data format (in :mod:`.data`).
``FluidGCNN``, ``FluidCNN``, ``build_model``: the surrogates (in :mod:`.models`).
``APPLICATION`` in :mod:`.app`: the commands, checkpoint kind and demo section equiscale discovers.
"""
from __future__ import annotations

from equiscale._lazy import lazy_attributes

__all__ = ["simulate_vorticity", "random_vorticity", "taylor_green_vorticity", "velocity"]


__getattr__ = lazy_attributes(__name__, {name: "equiscale.continuum.simulate" for name in __all__})
