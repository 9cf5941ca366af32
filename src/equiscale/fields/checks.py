"""The equivariance checks of the trained field models, for ``equiscale check`` and the demo.

* ``efield`` (``equiscale train efield``): charge density -> electric field on a periodic cube, under
  random rotations of the cube (the 24 rotations that map the grid onto itself), on random neutral
  charge densities: ``f(R.rho) = R.f(rho)`` with ``(R.E)(p) = R E(R^-1 p)``.
* ``velocity`` (``equiscale train velocity``): one step (and, with ``options.rollout > 1``, a
  rollout) of velocity ``(B, 2, R, R)`` (the G-CNN: vorticity ``(B, R, R)``) on random smooth
  flows, under the 90-degree rotations C(4), which act on velocity as on vectors.

The model is rebuilt from the settings its checkpoint stores (``state["extra"]``: the model's name
and constructor settings) in each dtype, so that float64 checks run float64 kernel bases, and given
the weights to predict with (the moving average when the run kept one). Declared as the checks of
the checkpoint kinds ``"efield"`` and ``"velocity"`` in :mod:`.app`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from equiscale.check import EquivarianceCheck

if TYPE_CHECKING:
    from equiscale.check import CheckOptions

__all__ = ["efield_checks", "velocity_checks", "cube_rotation_check"]

Measure = Callable[[torch.dtype, torch.Generator], float]


def cube_rotation_check(model: Callable[[torch.dtype], torch.nn.Module], resolution: int, box_size: float,
                        samples: int = 4) -> Measure:
    """``measure(dtype, generator)``: the relative error of ``model(dtype)`` under ``samples`` random cube rotations.

    ``model(dtype)`` gives the density -> field model in ``dtype`` (eval mode), ``(B, R, R, R)`` ->
    ``(B, 3, R, R, R)``; the input is one random neutral charge density of ``resolution``^3 on a
    box of side ``box_size``.
    """
    from equiscale.fields.electrostatics import random_charge_density
    from equiscale.fields.rotation_error import cube_rotations
    from equiscale.groups import SO3
    from equiscale.testing import GridField

    rotations = cube_rotations()
    density, field = GridField(None, ndim=3), GridField(SO3().irrep(1), axis=1, ndim=3)  # (E_x, E_y, E_z) = D^1 E

    def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
        net = model(dtype)
        rho = random_charge_density(1, resolution, generator, box_size=box_size).to(dtype)  # (1, R, R, R)
        with torch.no_grad():
            out = net(rho)
            worst = 0.0
            for index in torch.randint(len(rotations), (samples,), generator=generator).tolist():
                g = rotations[index]
                moved = net(density.apply(SO3(), g, rho.double(), None).to(dtype))
                expected = field.apply(SO3(), g, out.double(), None)
                worst = max(worst, float((moved.double() - expected).abs().max() / out.abs().max()))
        return worst

    return measure


def _rebuilt(file: Path, state: dict[str, Any], build: Callable[..., torch.nn.Module]
             ) -> tuple[str, Callable[[torch.dtype], torch.nn.Module]]:
    """The model's name and ``model(dtype)``: the model rebuilt in ``dtype`` with the checkpoint's weights."""
    from equiscale.train import inference_weights

    extra = state.get("extra") or {}
    if not isinstance(extra.get("settings"), dict) or "model" not in extra:
        raise ValueError(f"{file}: the checkpoint does not record which model it holds (no model settings)")
    name, settings = str(extra["model"]), dict(extra["settings"])
    weights = inference_weights(state)
    models: dict[torch.dtype, torch.nn.Module] = {}

    def model_in(dtype: torch.dtype) -> torch.nn.Module:
        if dtype not in models:
            model = build(name, **settings, dtype=dtype)
            try:
                model.load_state_dict(weights)
            except RuntimeError as error:
                raise ValueError(f"{file}: the weights do not fit the stored model settings: "
                                 f"{str(error).splitlines()[0]}") from error
            models[dtype] = model.eval()
        return models[dtype]

    return name, model_in


def efield_checks(file: Path, state: dict[str, Any], options: CheckOptions) -> tuple[str, list[EquivarianceCheck]]:
    """The check of the electrostatics checkpoint ``file`` (loaded as ``state``, with its header).

    Returns:
        A one-line description and one check: random cube rotations of a random charge density.
    """
    from equiscale.fields.efield import EFIELD_MODELS
    from equiscale.fields.models import count_parameters, efield_model

    statistics = state["header"].get("statistics") or {}
    resolution, box_size = int(statistics.get("resolution") or 16), float(statistics.get("box_size") or 1.0)
    name, model_in = _rebuilt(file, state, efield_model)
    label = options.label or f"efield {EFIELD_MODELS.get(name, name)}"
    check = EquivarianceCheck(label, "cube rotations", cube_rotation_check(model_in, resolution, box_size,
                                                                           options.samples))
    description = (f"{file}: charge density -> electric field model '{name}' "
                   f"({count_parameters(model_in(torch.float32))} parameters), on a random {resolution}^3 density, "
                   f"the 24 rotations of the cube")
    return description, [check]


def velocity_checks(file: Path, state: dict[str, Any], options: CheckOptions) -> tuple[str, list[EquivarianceCheck]]:
    """The checks of the velocity checkpoint ``file`` (loaded as ``state``, with its header).

    Returns:
        A one-line description and the checks: one step, and a rollout of ``options.rollout``
        steps when that is above 1, under C(4).
    """
    from equiscale.continuum.simulate import random_vorticity
    from equiscale.fields.models import count_parameters, velocity_model
    from equiscale.fields.velocity_field import velocity_from_vorticity
    from equiscale.groups import C
    from equiscale.testing import GridField, equivariance_error

    statistics = state["header"].get("statistics") or {}
    resolution = int(statistics.get("resolution") or 32)
    domain_size = float(statistics.get("domain_size") or 2 * torch.pi)
    name, model_in = _rebuilt(file, state, velocity_model)
    group = C(4)
    on_vorticity = name == "gcnn"
    action = GridField() if on_vorticity else GridField(group.irrep(1), axis=1)  # velocity: D^1(g) = R(g)

    def steps_check(steps: int) -> Measure:
        def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
            model = model_in(dtype)
            w = random_vorticity(2, resolution, generator=generator, domain_size=domain_size).double()
            x = (w if on_vorticity else velocity_from_vorticity(w, domain_size)).to(dtype)

            @torch.no_grad()
            def roll(field: torch.Tensor) -> torch.Tensor:
                for _ in range(steps):
                    field = model(field)
                return field

            return equivariance_error(roll, x, group, action, action, n_samples=options.samples, generator=generator)

        return measure

    label = options.label or f"velocity {name}"
    checks = [EquivarianceCheck(f"{label}: one step", group.name, steps_check(1))]
    if options.rollout > 1:
        checks.append(EquivarianceCheck(f"{label}: {options.rollout}-step rollout", group.name,
                                        steps_check(options.rollout)))
    field = "vorticity" if on_vorticity else "velocity"
    description = (f"{file}: 2D velocity model '{name}' ({count_parameters(model_in(torch.float32))} parameters), on "
                   f"random {resolution}x{resolution} {field}, group {group.name}")
    return description, checks
