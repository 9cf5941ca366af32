"""``equiscale check``: measure how equivariant a trained model is, in float64 and float32.

A *check* is a named function ``measure(dtype, generator) -> error`` that returns the relative
equivariance error ``max |f(g.x) - g.f(x)| / max |f(x)|`` of :func:`equiscale.testing.equivariance_error`
at random group elements drawn from ``generator``, with the model and inputs in ``dtype``.

:func:`checkpoint_checks` builds the checks of a checkpoint, recognising its kind from its content:

* ``fluid``: a run directory or ``.pt`` file of ``equiscale train fluid``; the one-step map
  ``w(t) -> w(t + dt)`` (and, with ``rollout``, the rollout) on random smooth vorticity, under the
  90-degree rotations (and reflections, vorticity being a pseudo-scalar) of the model's group.
* ``potential``: a checkpoint of ``equiscale train potential``; energy, forces and stress of a
  rattled periodic crystal of the model's elements under random rotations and reflections (O(3)),
  translations and permutations of the atoms, all at once: each evaluation renumbers the atoms
  by a fresh random permutation and maps its outputs back.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

__all__ = ["EquivarianceCheck", "CheckResult", "checkpoint_file", "checkpoint_kind", "checkpoint_checks",
           "measure_checks", "format_table", "markdown_table"]

KINDS = ("fluid", "potential")


@dataclass(frozen=True)
class EquivarianceCheck:
    """One row of an equivariance table: what is checked, under which group, and how.

    ``measure(dtype, generator)`` returns the relative equivariance error with the function and
    its inputs in ``dtype`` (``torch.float64`` or ``torch.float32``).
    """

    name: str
    group: str
    measure: Callable[[torch.dtype, torch.Generator], float]


@dataclass(frozen=True)
class CheckResult:
    """The measured errors of one :class:`EquivarianceCheck`."""

    name: str
    group: str
    float64: float
    float32: float


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint file of ``path``: the file itself, or ``best.pt`` (else ``last.pt``) of a directory."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds no best.pt or last.pt: not a training run directory")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


def _kind_of_state(state: dict[str, Any], path: Path) -> str:
    extra = state.get("extra") or {}
    if not isinstance(extra, dict) or "model" not in state:
        raise ValueError(f"{path} is not an equiscale training checkpoint (no model weights and settings)")
    if "model_config" in extra or extra.get("kind") == "equiscale.atomistic.EquivariantPotential":
        return "potential"
    settings = extra.get("settings")
    if isinstance(settings, dict) and settings.get("model") in ("gcnn", "cnn", "cnn-aug"):
        return "fluid"
    raise ValueError(f"{path} holds neither a fluid surrogate nor an interatomic potential "
                     f"(settings: {sorted(extra)}); `equiscale check` knows {' and '.join(KINDS)} checkpoints")


def _load(path: str | os.PathLike) -> tuple[Path, dict[str, Any], str]:
    from equiscale.train import load_checkpoint

    file = checkpoint_file(path)
    state = load_checkpoint(file)
    return file, state, _kind_of_state(state, file)


def checkpoint_kind(path: str | os.PathLike) -> str:
    """``"fluid"`` or ``"potential"``, read from the checkpoint's content (a run directory works too).

    Raises:
        FileNotFoundError: no such file, or a directory without ``best.pt``/``last.pt``.
        ValueError: unreadable, or not a checkpoint of a kind equiscale knows.
    """
    return _load(path)[2]


# --- fluid surrogates ----------------------------------------------------------------------------
def _grid_group(group: Any) -> Any:
    """The largest subgroup of C(n)/D(n) that maps the square grid onto itself (n = 4, 2 or 1)."""
    from equiscale.groups import C, D

    n = next(m for m in (4, 2, 1) if group.n % m == 0)
    return (D if group.name.startswith("D") else C)(n)


def _fluid_checks(state: dict[str, Any], file: Path, label: str | None, rollout: int,
                  samples: int) -> tuple[str, list[EquivarianceCheck]]:
    from equiscale.continuum.models import build_model, count_parameters, parse_group
    from equiscale.continuum.simulate import random_vorticity
    from equiscale.testing import GridField, equivariance_error

    settings = state["extra"]["settings"]
    record = state["extra"].get("record") or {}
    resolution = int(record.get("resolution") or 32)
    group = _grid_group(parse_group(settings.get("group", "C4")))
    pseudo = group.name.startswith("D") and settings["model"] == "gcnn"
    action = GridField(group.irrep(1, 0), axis=-3) if pseudo else GridField()
    models: dict[torch.dtype, torch.nn.Module] = {}

    def model_in(dtype: torch.dtype) -> torch.nn.Module:
        if dtype not in models:
            model = build_model(**settings)
            try:
                model.load_state_dict(state["model"])
            except RuntimeError as error:
                raise ValueError(f"{file}: the weights do not fit the stored model settings: {error}") from error
            models[dtype] = model.to(dtype).eval()
        return models[dtype]

    def steps_check(steps: int) -> Callable[[torch.dtype, torch.Generator], float]:
        def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
            model = model_in(dtype)
            w = random_vorticity(2, resolution, generator=generator).to(dtype)[:, None]

            @torch.no_grad()
            def roll(field: torch.Tensor) -> torch.Tensor:
                for _ in range(steps):
                    field = model(field)
                return field

            return equivariance_error(roll, w, group, action, action, n_samples=samples, generator=generator)

        return measure

    name = label or f"fluid {settings['model']}" + (f" {group.name}" if settings["model"] == "gcnn" else "")
    checks = [EquivarianceCheck(f"{name}: one step", group.name, steps_check(1))]
    if rollout > 1:
        checks.append(EquivarianceCheck(f"{name}: {rollout}-step rollout", group.name, steps_check(rollout)))
    parameters = count_parameters(build_model(**settings))
    description = (f"{file}: fluid surrogate '{settings['model']}' ({parameters} parameters), on random "
                   f"{resolution}x{resolution} vorticity, group {group.name}")
    return description, checks


# --- interatomic potentials ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Rank2Tensor:
    """The action ``T -> R T R^T`` on ``(..., 3, 3)`` tensors (stress), R the rotation matrix of g."""

    def apply(self, group: Any, g: torch.Tensor, x: torch.Tensor, translation: torch.Tensor | None) -> torch.Tensor:
        rotation = group.standard_representation()(g).to(torch.float64)
        return rotation @ x @ rotation.T


def _probe_structure(elements: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A rattled 2x2x2 fcc supercell (32 atoms) with the model's elements: positions, numbers, cell."""
    import numpy as np

    from equiscale.atomistic.model import element_symbol

    rng = np.random.default_rng(seed)
    try:
        from ase.data import covalent_radii, reference_states

        state = reference_states[elements[0]] or {}
        a = float(state["a"]) if state.get("symmetry") == "fcc" else 2 * float(covalent_radii[elements[0]]) * 2**0.5
    except (ImportError, KeyError, IndexError):  # pragma: no cover - ase is a dependency of the potential
        a = 3.6
    if not a > 0:
        raise ValueError(f"no lattice constant for {element_symbol(elements[0])}")
    basis = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    cells = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    positions = a * (cells[:, None, :] + basis[None]).reshape(-1, 3) + rng.normal(scale=0.05 * a, size=(32, 3))
    numbers = rng.choice(np.asarray(elements), size=32)
    cell = 2 * a * np.eye(3) + rng.normal(scale=0.02 * a, size=(3, 3))  # slightly sheared
    return torch.from_numpy(positions), torch.from_numpy(numbers), torch.from_numpy(cell)


def _potential_checks(file: Path, label: str | None, samples: int, seed: int) -> tuple[str, list[EquivarianceCheck]]:
    from equiscale.atomistic.checkpoints import load_potential
    from equiscale.atomistic.data import collate, structure_graph
    from equiscale.atomistic.structures import AtomicStructure
    from equiscale.groups import O3
    from equiscale.testing import Invariant, Positions, equivariance_error

    models: dict[torch.dtype, Any] = {}

    def model_in(dtype: torch.dtype) -> Any:
        if dtype not in models:
            models[dtype] = load_potential(file, dtype="float64" if dtype == torch.float64 else "float32")
        return models[dtype]

    reference = model_in(torch.float64)
    positions, numbers, cell = _probe_structure(reference.elements, seed)

    def output_check(index: int, action: Any) -> Callable[[torch.dtype, torch.Generator], float]:
        def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
            model = model_in(dtype)

            def predict(x: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
                order = torch.randperm(len(numbers), generator=generator)  # renumber the atoms
                structure = AtomicStructure(x[order].double().numpy(), numbers[order].numpy(),
                                            lattice.double().numpy(), pbc=True)
                batch = collate([structure_graph(structure, model.cutoff)], dtype)
                out = model(batch, forces=True, stress=True, create_graph=False)
                outputs = (out["energy"], out["forces"][torch.argsort(order)], out["stress"][0])
                return outputs[index].detach()

            return equivariance_error(predict, (positions.to(dtype), cell.to(dtype)), O3(), (Positions(), "1o"),
                                      action, n_samples=samples, translations=True, generator=generator)

        return measure

    name = label or "potential"
    group = "E(3) x S_N"
    checks = [EquivarianceCheck(f"{name}: energy (invariant)", group, output_check(0, Invariant())),
              EquivarianceCheck(f"{name}: forces (vectors)", group, output_check(1, "1o")),
              EquivarianceCheck(f"{name}: stress (rank-2 tensor)", group, output_check(2, _Rank2Tensor()))]
    symbols = ", ".join(_symbol(z) for z in reference.elements)
    parameters = sum(p.numel() for p in reference.parameters())
    description = (f"{file}: interatomic potential ({symbols}; {parameters} parameters), on a rattled 32-atom "
                   f"periodic crystal, under rotations, reflections, translations and permutations")
    return description, checks


def _symbol(z: int) -> str:
    from equiscale.atomistic.model import element_symbol

    return element_symbol(z)


def checkpoint_checks(path: str | os.PathLike, label: str | None = None, rollout: int = 0, samples: int = 4,
                      seed: int = 0) -> tuple[str, list[EquivarianceCheck]]:
    """The equivariance checks of a trained model and a one-line description of what they test.

    Args:
        path: a checkpoint (``best.pt``/``last.pt``) or a run directory.
        label: prefix of the check names (default: the kind of model).
        rollout: fluid models: also check a rollout of this many steps (0 or 1: one step only).
        samples: random group elements per check.
        seed: seeds the probe structure of a potential.

    Raises:
        FileNotFoundError, ValueError: no checkpoint there, or not one of a kind equiscale knows.
    """
    file, state, kind = _load(path)
    if kind == "fluid":
        return _fluid_checks(state, file, label, rollout, samples)
    return _potential_checks(file, label, samples, seed)


def measure_checks(checks: Sequence[EquivarianceCheck], seed: int = 0, progress: bool = False) -> list[CheckResult]:
    """Run every check in float64 and float32, each from a generator seeded with ``seed``."""
    from equiscale.train.progress import progress_bar

    results = []
    for check in progress_bar(list(checks), enabled=progress, desc="equivariance checks", unit="check", leave=False):
        errors = [check.measure(dtype, torch.Generator().manual_seed(seed)) for dtype in (torch.float64, torch.float32)]
        results.append(CheckResult(check.name, check.group, *errors))
    return results


def format_table(results: Sequence[CheckResult]) -> str:
    """A plain-text table: check, group, float64 and float32 errors."""
    width = max([len(r.name) for r in results] + [5])
    group_width = max([len(r.group) for r in results] + [5])
    header = f"{'check':{width}s}  {'group':{group_width}s}  {'float64':>9s}  {'float32':>9s}"
    lines = [header, "-" * len(header)]
    lines += [f"{r.name:{width}s}  {r.group:{group_width}s}  {r.float64:9.1e}  {r.float32:9.1e}" for r in results]
    return "\n".join(lines)


def markdown_table(results: Sequence[CheckResult]) -> str:
    """The same table in markdown."""
    lines = ["| check | group | float64 | float32 |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.group} | {r.float64:.1e} | {r.float32:.1e} |" for r in results]
    return "\n".join(lines)
