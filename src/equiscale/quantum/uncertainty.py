"""Committees of Hamiltonian models: the mean H, its per-block spread, and how well the spread predicts the error.

A committee (``equiscale train hamiltonian ... --ensemble N``) predicts H, the energy, dipole and
polarizability as the mean over its members; its uncertainty is the spread of H per block. A block is
the ``(2 l1 + 1) x (2 l2 + 1)`` sub-matrix of H coupling one shell of atom ``i`` with one shell of atom
``j`` (``i <= j``; on the diagonal, the shells ``a <= b``, since H is symmetric). Its spread is the
RMS over the block's entries of the members' sample standard deviation,

    sigma_block = sqrt(mean over entries of var_members(H_entry)),

which is invariant under rotations and reflections: the summed variance of a block is
``sum_k |B_k - B_mean|_F^2 / (N - 1)``, and the block transforms as ``D_l1 B D_l2^T`` with orthogonal
Wigner matrices. The observed error of a block is the RMS of ``H_mean - F`` over its entries.

Blocks are grouped by type, named by the two elements and the two shells' ``l``, e.g. ``O-H s-p``
(the first atom is the one earlier in the molecule). Calibration uses every block of every frame as
one sample (:mod:`equiscale.uncertainty.calibration`); spreads are floored at 1e-6 of their RMS so that
blocks on which the members agree exactly (e.g. beyond a pair cutoff) do not make the scale infinite.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from equiscale.uncertainty.model import Committee

__all__ = ["HamiltonianCommittee", "load_hamiltonian_committee", "shell_blocks", "block_spread", "block_errors",
           "block_metrics", "committee_text"]

SHELL_LETTERS = "spdfghik"
_SYMBOLS = {1: "H", 2: "He", 3: "Li", 4: "Be", 5: "B", 6: "C", 7: "N", 8: "O", 9: "F", 10: "Ne", 11: "Na", 12: "Mg",
            13: "Al", 14: "Si", 15: "P", 16: "S", 17: "Cl", 18: "Ar"}


def _symbol(z: int) -> str:
    return _SYMBOLS.get(int(z), f"Z{int(z)}")


def _combine(outputs: Sequence[dict[str, Tensor]]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Mean and sample standard deviation over members of the floating-point outputs; the others
    (``num_orbitals``) taken from the first member."""
    mean, spread = {}, {}
    for key, value in outputs[0].items():
        if isinstance(value, Tensor) and value.is_floating_point():
            stacked = torch.stack([o[key] for o in outputs])
            mean[key] = stacked.mean(0)
            spread[key] = stacked.std(0, unbiased=True) if len(outputs) > 1 else torch.zeros_like(stacked[0])
        else:
            mean[key] = value
    return mean, spread


class HamiltonianCommittee(Committee):
    """A :class:`~equiscale.uncertainty.Committee` of Hamiltonian models.

    ``committee(batch)`` is the members' mean output (``num_orbitals`` as the members give it);
    ``committee.predict(batch)`` is ``(mean, spread)``, the spread holding the sample standard
    deviation of every floating-point output (``hamiltonian (B, n, n)``, ``energy (B,)``, ...).
    """

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The members' mean output for ``batch`` (see :func:`equiscale.quantum.training.collate`)."""
        return _combine(self.outputs(batch))[0]

    def predict(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(mean, standard deviation over members) of the outputs for ``batch``."""
        return _combine(self.outputs(batch))


def load_hamiltonian_committee(path: str | os.PathLike, dtype: str | torch.dtype | None = None
                               ) -> tuple[HamiltonianCommittee, dict[str, Any]]:
    """The committee trained into ``path`` (each member's ``best.pt`` through
    :func:`~equiscale.quantum.training.load_hamiltonian`) in eval mode, and member 0's checkpoint state.

    Raises:
        FileNotFoundError, ValueError: not a committee, a member without a checkpoint, members trained
            on different basis descriptions or with different guesses.
    """
    from equiscale.quantum.training import load_hamiltonian
    from equiscale.uncertainty.model import committee_members

    states: list[dict[str, Any]] = []

    def member(folder: Path) -> torch.nn.Module:
        model, state = load_hamiltonian(folder, dtype)
        states.append(state)
        return model

    committee = HamiltonianCommittee(committee_members(path, member)).eval()
    shells = [s["header"]["statistics"]["shells"] for s in states]
    if any(s != shells[0] for s in shells):
        raise ValueError(f"{path}: the committee's members were trained on different basis descriptions")
    guesses = {getattr(m, "guess", "none") for m in committee.members}
    if len(guesses) > 1:
        raise ValueError(f"{path}: the committee's members learn different guesses ({', '.join(sorted(guesses))})")
    return committee, states[0]


def shell_blocks(numbers: Sequence[int], shells: dict[int, Sequence[int]]) -> list[tuple[slice, slice, str]]:
    """The independent blocks of a symmetric H: ``(rows, columns, type)`` for shell ``a`` of atom ``i`` and
    shell ``b`` of atom ``j`` with ``(i, a) <= (j, b)``; type like ``"O-H s-p"``.

    Raises:
        ValueError: an element without shells in ``shells``.
    """
    entries = []  # (atom, element, l, slice) per shell, in AO order
    start = 0
    for atom, z in enumerate(numbers):
        if int(z) not in shells:
            raise ValueError(f"element Z={int(z)} is not in the basis description")
        for l in shells[int(z)]:
            entries.append((atom, int(z), int(l), slice(start, start + 2 * int(l) + 1)))
            start += 2 * int(l) + 1
    blocks = []
    for p, (_, z1, l1, rows) in enumerate(entries):
        for _, z2, l2, columns in entries[p:]:
            blocks.append((rows, columns, f"{_symbol(z1)}-{_symbol(z2)} {SHELL_LETTERS[l1]}-{SHELL_LETTERS[l2]}"))
    return blocks


def _block_rms(matrix: Tensor, blocks: Sequence[tuple[slice, slice, str]]) -> np.ndarray:
    return np.array([float(matrix[r, c].double().square().mean().sqrt()) for r, c, _ in blocks])


def block_spread(spread: Tensor, blocks: Sequence[tuple[slice, slice, str]]) -> np.ndarray:
    """Per block, the RMS of the members' standard deviation ``spread`` ``(n, n)`` over its entries ``(blocks,)``."""
    return _block_rms(spread, blocks)


def block_errors(mean: Tensor, reference: Tensor, blocks: Sequence[tuple[slice, slice, str]]) -> np.ndarray:
    """Per block, the RMS of ``mean - reference`` (each ``(n, n)``) over its entries ``(blocks,)``."""
    return _block_rms(mean.double() - reference.double(), blocks)


def block_metrics(errors: np.ndarray, sigma: np.ndarray, types: Sequence[str], bins: int = 10) -> dict[str, Any]:
    """Calibration of the block spreads against the block errors (Hartree), overall and per block type.

    Args:
        errors: RMS error per block ``(n,)``.
        sigma: spread per block ``(n,)``.
        types: block type per block (``n`` names).

    Returns:
        ``scale`` (one factor fitted on all blocks), ``spearman``, ``nll_raw``, ``nll``, ``rms_error``,
        ``rms_sigma`` (calibrated), ``blocks``, ``calibration`` (the binned curve, Hartree) and
        ``types``: per type ``blocks``, ``rms_error``, ``rms_sigma`` (with the overall scale), ``spearman``.
    """
    from equiscale.uncertainty.calibration import calibration_curve, fit_scale, gaussian_nll, spearman

    errors, sigma = np.asarray(errors, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    if errors.size == 0:
        raise ValueError("no blocks to calibrate on")
    sigma = np.maximum(sigma, max(1e-300, 1e-6 * float(np.sqrt((sigma**2).mean()))))
    scale = fit_scale(errors, sigma)
    kinds = np.asarray(list(types))
    per_type = {}
    for kind in dict.fromkeys(types):
        keep = kinds == kind
        per_type[kind] = {"blocks": int(keep.sum()), "rms_error": float(np.sqrt((errors[keep] ** 2).mean())),
                          "rms_sigma": float(scale * np.sqrt((sigma[keep] ** 2).mean())),
                          "spearman": spearman(errors[keep], sigma[keep])}
    curve = calibration_curve(errors, sigma, scale, bins)
    return {"scale": scale, "spearman": spearman(errors, sigma), "nll_raw": gaussian_nll(errors, sigma),
            "nll": gaussian_nll(errors, sigma, scale), "rms_error": float(np.sqrt((errors**2).mean())),
            "rms_sigma": float(scale * np.sqrt((sigma**2).mean())), "blocks": int(errors.size),
            "calibration": {k: [float(x) for x in v] for k, v in curve.items()}, "types": per_type}


def committee_text(result: dict[str, Any], members: int) -> str:
    """The report's uncertainty section: the overall calibration and a table per block type (micro-Hartree)."""
    lines = [f"uncertainty: committee of {members}, prediction the members' mean; per-block spread = RMS over the "
             f"block of the members' std of H",
             f"calibration scale {result['scale']:.4g} (fitted on {result['blocks']} blocks), Spearman "
             f"{result['spearman']:.3f}, NLL {result['nll_raw']:.4g} raw -> {result['nll']:.4g} calibrated",
             f"{'block type':14s} {'blocks':>7s} {'RMS error uHa':>14s} {'scale x spread uHa':>19s} {'Spearman':>9s}"]
    for kind, row in result["types"].items():
        lines.append(f"{kind:14s} {row['blocks']:7d} {row['rms_error'] * 1e6:14.4g} {row['rms_sigma'] * 1e6:19.4g} "
                     f"{row['spearman']:9.3f}")
    return "\n".join(lines)
