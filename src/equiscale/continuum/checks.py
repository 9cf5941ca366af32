"""The equivariance checks of a trained fluid surrogate, for ``equiscale check`` and the demo.

The one-step map ``w(t) -> w(t + dt)`` (and, with ``options.rollout > 1``, the rollout) on random
smooth vorticity, under the 90-degree rotations (and reflections, vorticity being a pseudo-scalar)
of the model's group. Declared as the checks of checkpoint kind ``"fluid"`` in :mod:`.app`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from equiscale.check import EquivarianceCheck

if TYPE_CHECKING:
    from equiscale.check import CheckOptions

__all__ = ["fluid_checks", "rollout_checks", "grid_group"]


def grid_group(group: Any) -> Any:
    """The largest subgroup of C(n)/D(n) that maps the square grid onto itself (n = 4, 2 or 1)."""
    from equiscale.groups import C, D

    n = next(m for m in (4, 2, 1) if group.n % m == 0)
    return (D if group.name.startswith("D") else C)(n)


Measure = Callable[[torch.dtype, torch.Generator], float]


def rollout_checks(label: str, group: Any, action: Any, model_in: Callable[[torch.dtype], Callable],
                   probe: Callable[[torch.dtype, torch.Generator], torch.Tensor],
                   options: CheckOptions) -> list[EquivarianceCheck]:
    """The checks of a model that steps fields in time: one step and, when ``options.rollout`` is above
    1, a rollout of that many steps (the model applied to its own output).

    Args:
        label: prefix of the check names.
        group: the group acting on the grid (e.g. ``C(4)``).
        action: how it acts on the model's input and output (e.g. :class:`equiscale.testing.GridField`).
        model_in: ``model_in(dtype)`` -> the model in that dtype (build it once per dtype).
        probe: ``probe(dtype, generator)`` -> a batch of random input fields in that dtype.
        options: the samples per check and the rollout length.
    """
    from equiscale.testing import equivariance_error

    def steps_check(steps: int) -> Measure:
        def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
            model = model_in(dtype)

            @torch.no_grad()
            def roll(field: torch.Tensor) -> torch.Tensor:
                for _ in range(steps):
                    field = model(field)
                return field

            return equivariance_error(roll, probe(dtype, generator), group, action, action,
                                      n_samples=options.samples, generator=generator)

        return measure

    checks = [EquivarianceCheck(f"{label}: one step", group.name, steps_check(1))]
    if options.rollout > 1:
        checks.append(EquivarianceCheck(f"{label}: {options.rollout}-step rollout", group.name,
                                        steps_check(options.rollout)))
    return checks


def fluid_checks(file: Path, state: dict[str, Any], options: CheckOptions) -> tuple[str, list[EquivarianceCheck]]:
    """The checks of the fluid checkpoint ``file`` (loaded as ``state``, with its header).

    Returns:
        A one-line description of what is checked, and the checks: one step, and a rollout of
        ``options.rollout`` steps when that is above 1 (see :func:`rollout_checks`).
    """
    from equiscale.continuum.models import count_parameters, parse_group
    from equiscale.continuum.simulate import random_vorticity
    from equiscale.continuum.training import run_model
    from equiscale.testing import GridField

    header = state["header"]
    settings = header["settings"]
    resolution = int(header.get("statistics", {}).get("resolution") or 32)
    group = grid_group(parse_group(settings.get("group", "C4")))
    equivariant = settings["model"] in ("gcnn", "gunet", "gfno")
    pseudo = group.name.startswith("D") and equivariant
    action = GridField(group.irrep(1, 0), axis=-3) if pseudo else GridField()
    models: dict[torch.dtype, torch.nn.Module] = {}

    def model_in(dtype: torch.dtype) -> torch.nn.Module:
        if dtype not in models:
            models[dtype] = run_model(state, file).to(dtype)
        return models[dtype]

    def probe(dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
        return random_vorticity(2, resolution, generator=generator).to(dtype)[:, None]

    name = options.label or f"fluid {settings['model']}" + (f" {group.name}" if equivariant else "")
    checks = rollout_checks(name, group, action, model_in, probe, options)
    parameters = count_parameters(model_in(torch.float64))
    description = (f"{file}: fluid surrogate '{settings['model']}' ({parameters} parameters), on random "
                   f"{resolution}x{resolution} vorticity, group {group.name}")
    return description, checks
