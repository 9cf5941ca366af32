"""Fields: the steerable demonstrations on grids.

* 2D velocity (:mod:`.velocity`): a ``C(8)``-steerable CNN on velocity fields of decaying
  turbulence against the ``C(4)`` G-CNN on vorticity and a plain CNN (``equiscale train velocity``).
* 3D electrostatics (:mod:`.efield`): an ``SO(3)``-steerable CNN mapping a periodic charge density
  to its electric field against plain 3D CNNs (``equiscale train efield``).

Shared: the models (:mod:`.models`), the off-grid rotation measurement (:mod:`.rotation_error`),
the figures (:mod:`.plots`), the training and report helpers (:mod:`.runs`); the physics:
:mod:`.velocity_field` (velocity from vorticity, quarter turns of vector fields) and
:mod:`.electrostatics` (periodic Poisson solve, Gaussian charges). The command-line declaration
is :mod:`.app`, its commands :mod:`.commands`, the checks of trained checkpoints :mod:`.checks`
and the demo section :mod:`.demo`.
"""
