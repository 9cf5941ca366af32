"""Continuum scale: 2D fluid data (pseudo-spectral Navier-Stokes), rotation-equivariant surrogates,
rollouts, evaluation and figures.

``simulate_vorticity``, ``random_vorticity``, ``taylor_green_vorticity``: the simulator.
``load_fluid``, ``save_fluid``, ``generate_fluid``, ``FluidData``: the ``.npz`` data format.
``FluidGCNN``, ``FluidCNN``, ``build_model``: the surrogates (in :mod:`.models`).
"""
from equiscale.continuum.simulate import random_vorticity, simulate_vorticity, taylor_green_vorticity, velocity

__all__ = ["simulate_vorticity", "random_vorticity", "taylor_green_vorticity", "velocity"]
