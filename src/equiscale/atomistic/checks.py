"""The symmetry checks of a trained potential, run by ``equiscale check`` and the demo.

Energy, forces and stress of a rattled, slightly sheared periodic crystal of the model's elements
under random rotations and reflections (O(3)), translations and permutations of the atoms, all at
once: each evaluation renumbers the atoms by a fresh random permutation and maps its outputs back.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

if TYPE_CHECKING:
    from equiscale.check import CheckOptions, EquivarianceCheck

__all__ = ["potential_checks", "probe_structure", "Rank2Tensor"]


@dataclass(frozen=True)
class Rank2Tensor:
    """The action ``T -> R T R^T`` on ``(..., 3, 3)`` tensors (stress), R the rotation matrix of g."""

    def apply(self, group: Any, g: torch.Tensor, x: torch.Tensor, translation: torch.Tensor | None) -> torch.Tensor:
        rotation = group.standard_representation()(g).to(torch.float64)
        return rotation @ x @ rotation.T


def probe_structure(elements: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A rattled 2x2x2 fcc supercell (32 atoms) of ``elements``.

    Returns:
        positions ``(32, 3)`` (Angstrom), atomic numbers ``(32,)`` drawn from ``elements``, and the
        slightly sheared cell ``(3, 3)`` (lattice vectors as rows); float64 tensors.
    """
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


def potential_checks(file: Path, state: dict, options: "CheckOptions") -> tuple[str, list["EquivarianceCheck"]]:
    """The checks of the potential in checkpoint ``file`` and a one-line description of them.

    Args:
        file: the checkpoint (``best.pt``/``last.pt``) of ``equiscale train potential``.
        state: its loaded content (unused: the model is loaded by
            :func:`~equiscale.atomistic.checkpoints.load_potential` once per dtype).
        options: ``label`` (prefix of the check names, default "potential"), ``samples`` (random
            group elements per check) and ``seed`` (of the probe crystal).
    """
    from equiscale.atomistic import checkpoints
    from equiscale.atomistic.data import collate, structure_graph
    from equiscale.atomistic.model import element_symbol
    from equiscale.atomistic.structures import AtomicStructure
    from equiscale.check import EquivarianceCheck
    from equiscale.groups import O3
    from equiscale.testing import Invariant, Positions, equivariance_error

    models: dict[torch.dtype, Any] = {}

    def model_in(dtype: torch.dtype) -> Any:
        if dtype not in models:  # looked up at call time, so tests can substitute the loader
            models[dtype] = checkpoints.load_potential(file, dtype="float64" if dtype == torch.float64 else "float32")
        return models[dtype]

    reference = model_in(torch.float64)
    positions, numbers, cell = probe_structure(reference.elements, options.seed)

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
                                      action, n_samples=options.samples, translations=True, generator=generator)

        return measure

    name = options.label or "potential"
    group = "E(3) x S_N"
    checks = [EquivarianceCheck(f"{name}: energy (invariant)", group, output_check(0, Invariant())),
              EquivarianceCheck(f"{name}: forces (vectors)", group, output_check(1, "1o")),
              EquivarianceCheck(f"{name}: stress (rank-2 tensor)", group, output_check(2, Rank2Tensor()))]
    symbols = ", ".join(element_symbol(z) for z in reference.elements)
    parameters = sum(p.numel() for p in reference.parameters())
    description = (f"{file}: interatomic potential ({symbols}; {parameters} parameters), on a rattled 32-atom "
                   f"periodic crystal, under rotations, reflections, translations and permutations")
    return description, checks
