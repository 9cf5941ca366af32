"""The equivariance checks of a trained Hamiltonian model, for ``equiscale check`` and the demo.

On the geometry stored in the checkpoint (the first training frame, displaced at random per check):

* O(3): rotations and reflections (half of the samples have det -1) of the molecule; ``H`` must become
  ``D H D^T`` with ``D`` the block-diagonal ``Irreps.D_from_matrix`` of the molecule's AO irreps, the
  dipole ``R mu``, the polarizability ``R alpha R^T``, the energy unchanged;
* permutations of identical atoms: ``H`` with the AO rows and columns permuted alike;
* translations: every output unchanged.

Each error is ``max |f(g x) - g f(x)| / max |f(x)|`` over ``options.samples`` random elements.
Declared as the checks of checkpoint kind ``"hamiltonian"`` in :mod:`equiscale.quantum.app`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch

from equiscale.check import EquivarianceCheck

if TYPE_CHECKING:
    from equiscale.check import CheckOptions

__all__ = ["hamiltonian_checks", "rotation_errors", "permutation_error", "translation_error", "OUTPUTS"]

OUTPUTS = ("hamiltonian", "dipole", "polarizability", "energy")


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(torch.finfo(b.dtype).tiny))


def _predict(model: Callable, numbers: torch.Tensor, positions: torch.Tensor) -> dict[str, torch.Tensor]:
    batch = {"numbers": numbers, "positions": positions, "batch": torch.zeros_like(numbers)}
    if getattr(model, "guess", "none") != "none":
        # the learned part alone: PySCF's one-electron guess G(R x) = D G(x) D^T is not ours to check
        from equiscale.quantum.basis import orbital_count

        n = orbital_count(numbers.tolist(), model.config["shells"])
        batch["guess"] = positions.new_zeros(1, n, n)
    with torch.no_grad():
        out = model(batch)
    return {k: v[0] for k, v in out.items() if k in OUTPUTS}


def rotation_errors(model: Callable, numbers: torch.Tensor, positions: torch.Tensor, shells: Mapping[int, list[int]],
                    rotation: torch.Tensor) -> dict[str, float]:
    """Relative errors of each output under the O(3) element ``rotation`` ``(3, 3)`` (float64)."""
    from equiscale.quantum.basis import molecule_irreps

    dtype = positions.dtype
    before = _predict(model, numbers, positions)
    after = _predict(model, numbers, positions @ rotation.to(dtype).T)
    d = molecule_irreps(numbers.tolist(), shells).D_from_matrix(rotation).to(dtype)
    r = rotation.to(dtype)
    return {"hamiltonian": _relative(after["hamiltonian"], d @ before["hamiltonian"] @ d.T),
            "dipole": _relative(after["dipole"], r @ before["dipole"]),
            "polarizability": _relative(after["polarizability"], r @ before["polarizability"] @ r.T),
            "energy": _relative(after["energy"], before["energy"])}


def permutation_error(model: Callable, numbers: torch.Tensor, positions: torch.Tensor, shells: Mapping[int, list[int]],
                      generator: torch.Generator) -> float:
    """Relative error of ``H`` under a random permutation of the atoms of each element (AOs permuted alike)."""
    order = torch.arange(len(numbers))
    for z in numbers.unique().tolist():
        atoms = (numbers == z).nonzero().flatten()
        order[atoms] = atoms[torch.randperm(len(atoms), generator=generator)]
    sizes = [sum(2 * l + 1 for l in shells[int(z)]) for z in numbers.tolist()]
    starts = [sum(sizes[:a]) for a in range(len(sizes))]
    ao = torch.cat([torch.arange(starts[a], starts[a] + sizes[a]) for a in order.tolist()])
    before = _predict(model, numbers, positions)["hamiltonian"]
    after = _predict(model, numbers[order], positions[order])["hamiltonian"]
    return _relative(after, before[ao][:, ao])


def translation_error(model: Callable, numbers: torch.Tensor, positions: torch.Tensor, shift: torch.Tensor) -> float:
    """Largest relative change of any output when every atom moves by ``shift`` ``(3,)``."""
    before = _predict(model, numbers, positions)
    after = _predict(model, numbers, positions + shift.to(positions.dtype))
    return max(_relative(after[k], before[k]) for k in OUTPUTS)


def _random_o3(generator: torch.Generator, reflect: bool) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r))
    return -q if bool(torch.det(q) < 0) != reflect else q


def hamiltonian_checks(file: Path, state: dict[str, Any], options: CheckOptions) -> tuple[str, list[EquivarianceCheck]]:
    """The checks of the ``hamiltonian`` checkpoint ``file`` (loaded as ``state``).

    Returns:
        A one-line description, and the checks: H, dipole, polarizability and energy under O(3),
        H under permutations of identical atoms, every output under translations.
    """
    from equiscale.quantum.basis import shells_from_json
    from equiscale.quantum.training import count_parameters, load_hamiltonian

    header = state["header"]
    statistics, settings = header["statistics"], header["settings"]
    shells = shells_from_json(statistics["shells"])
    probe = statistics["probe"]
    numbers = torch.tensor(probe["numbers"], dtype=torch.long)
    models: dict[torch.dtype, torch.nn.Module] = {}

    def model_in(dtype: torch.dtype) -> torch.nn.Module:
        if dtype not in models:  # built per dtype: a float32 round trip would round float64 constants
            models[dtype] = load_hamiltonian(file, dtype)[0]
        return models[dtype]

    def geometry(dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
        base = torch.tensor(probe["positions"], dtype=torch.float64)
        return (base + 0.05 * torch.randn(base.shape, dtype=torch.float64, generator=generator)).to(dtype)

    def o3_check(output: str) -> Callable[[torch.dtype, torch.Generator], float]:
        def measure(dtype: torch.dtype, generator: torch.Generator) -> float:
            positions = geometry(dtype, generator)
            return max(rotation_errors(model_in(dtype), numbers, positions, shells, _random_o3(generator, k % 2 == 1))[output]
                       for k in range(max(options.samples, 2)))

        return measure

    def permutations(dtype: torch.dtype, generator: torch.Generator) -> float:
        positions = geometry(dtype, generator)
        return max(permutation_error(model_in(dtype), numbers, positions, shells, generator) for _ in range(options.samples))

    def translations(dtype: torch.dtype, generator: torch.Generator) -> float:
        positions = geometry(dtype, generator)
        return max(translation_error(model_in(dtype), numbers, positions,
                                     5.0 * torch.randn(3, dtype=torch.float64, generator=generator))
                   for _ in range(options.samples))

    name = options.label or f"hamiltonian {settings.get('model', 'equivariant')}"
    checks = [EquivarianceCheck(f"{name}: {output} (rotations, reflections)", "O(3)", o3_check(output)) for output in OUTPUTS]
    checks.append(EquivarianceCheck(f"{name}: H (permutations of identical atoms)", "S_n", permutations))
    checks.append(EquivarianceCheck(f"{name}: all outputs (translations)", "T(3)", translations))
    description = (f"{file}: {settings.get('model', 'equivariant')} Hamiltonian model ({count_parameters(model_in(torch.float64))} "
                   f"parameters), on the stored geometry of {len(numbers)} atoms, displaced at random")
    return description, checks
