"""Atomic structures with their reference labels, read from and written to any file ASE handles.

An :class:`AtomicStructure` is one frame: positions (Angstrom), atomic numbers, cell, periodic
boundary conditions and, when known, the reference energy (eV), forces (eV/Angstrom) and stress
(eV/Angstrom^3, ASE's sign: ``stress = (1/V) dE/d(strain)``, so a compressed crystal has negative
stress). Arrays are numpy float64; validation happens once, on construction.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["AtomicStructure", "read_structures", "write_structures", "missing_labels"]


def _voigt_to_matrix(stress: np.ndarray) -> np.ndarray:
    """ASE's Voigt order (xx, yy, zz, yz, xz, xy) to a symmetric 3x3 matrix."""
    xx, yy, zz, yz, xz, xy = stress
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]], dtype=np.float64)


def _unless_all_nan(label: Any) -> Any:
    """``label``, or None when every value of it is NaN."""
    if label is None:
        return None
    try:
        values = np.asarray(label, dtype=np.float64)
    except (TypeError, ValueError):
        return label  # let the constructor name the problem
    return None if values.size and np.isnan(values).all() else label


def missing_labels(structures: Sequence["AtomicStructure"]) -> list[str]:
    """The labels (``"energies"``, ``"forces"``, ``"stresses"``) that no structure carries."""
    present = {"energies": any(s.energy is not None for s in structures),
               "forces": any(s.forces is not None for s in structures),
               "stresses": any(s.stress is not None for s in structures)}
    return [name for name, found in present.items() if not found]


@dataclass
class AtomicStructure:
    """One atomic configuration and its (optional) reference labels.

    Attributes:
        positions: ``(N, 3)`` Cartesian positions in Angstrom.
        numbers: ``(N,)`` atomic numbers.
        cell: ``(3, 3)`` lattice vectors as rows, Angstrom (zeros for a molecule in vacuum).
        pbc: ``(3,)`` periodic along each lattice vector.
        energy: total energy in eV, or None.
        forces: ``(N, 3)`` in eV/Angstrom, or None.
        stress: ``(3, 3)`` in eV/Angstrom^3 (ASE's sign convention), or None.

    Raises:
        ValueError: an empty structure, NaN or infinite positions or labels, shapes that do not
            agree, atomic numbers outside 1..118, or a periodic direction without a cell vector.
    """

    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray | None = None
    pbc: Any = False
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.numbers = np.asarray(self.numbers).astype(np.int64)
        n = len(self.numbers)
        if n == 0:
            raise ValueError("empty structure: it holds no atoms")
        if self.positions.shape != (n, 3):
            raise ValueError(f"positions must have shape ({n}, 3) for {n} atoms, got {self.positions.shape}")
        if not np.isfinite(self.positions).all():
            raise ValueError("positions hold NaN or infinite values")
        if self.numbers.min() < 1 or self.numbers.max() > 118:
            raise ValueError(f"atomic numbers must lie in 1..118, got {sorted(set(self.numbers.tolist()))}")
        self.cell = np.zeros((3, 3)) if self.cell is None else np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        if not np.isfinite(self.cell).all():
            raise ValueError("cell holds NaN or infinite values")
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if self.pbc.any():
            if abs(np.linalg.det(self.cell)) < 1e-9:
                raise ValueError(f"pbc={self.pbc.tolist()} needs a cell of non-zero volume, got cell {self.cell.tolist()}")
        if self.energy is not None:
            self.energy = float(self.energy)
            if not np.isfinite(self.energy):
                raise ValueError("energy is NaN or infinite")
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64)
            if self.forces.shape != (n, 3) or not np.isfinite(self.forces).all():
                raise ValueError(f"forces must be finite with shape ({n}, 3), got {self.forces.shape}")
        if self.stress is not None:
            stress = np.asarray(self.stress, dtype=np.float64)
            stress = _voigt_to_matrix(stress) if stress.shape == (6,) else stress
            if stress.shape != (3, 3) or not np.isfinite(stress).all():
                raise ValueError(f"stress must be finite, 3x3 or Voigt 6, got shape {np.shape(self.stress)}")
            self.stress = stress

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def volume(self) -> float:
        """Cell volume in Angstrom^3 (0 without a cell)."""
        return float(abs(np.linalg.det(self.cell)))

    @classmethod
    def from_atoms(cls, atoms: Any, labels: bool = True) -> "AtomicStructure":
        """Build from an ``ase.Atoms``; ``labels`` takes energy, forces and stress from its calculator
        results (as stored by extended XYZ and other ASE formats) where present. A label that is
        entirely NaN (some writers mark an unknown value so) counts as absent."""
        energy = forces = stress = None
        results = getattr(atoms.calc, "results", {}) if (labels and atoms.calc is not None) else {}
        if labels:
            energy = results.get("energy", atoms.info.get("energy", atoms.info.get("REF_energy")))
            forces = results.get("forces", atoms.arrays.get("forces", atoms.arrays.get("REF_forces")))
            stress = results.get("stress", atoms.info.get("stress", atoms.info.get("REF_stress")))
            energy, forces, stress = (_unless_all_nan(label) for label in (energy, forces, stress))
        cell = np.asarray(atoms.get_cell()[:], dtype=np.float64)
        return cls(atoms.get_positions(), atoms.get_atomic_numbers(), cell, atoms.get_pbc(), energy, forces, stress)

    def to_atoms(self) -> Any:
        """An ``ase.Atoms`` carrying the labels in a SinglePointCalculator."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        results: dict[str, Any] = {}
        if self.energy is not None:
            results["energy"] = self.energy
        if self.forces is not None:
            results["forces"] = self.forces
        if self.stress is not None:
            s = self.stress
            results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms


def read_structures(path: str | os.PathLike, index: str | int = ":", format: str | None = None) -> list[AtomicStructure]:
    """Read every frame (or ``index``, ASE's syntax) of any file ASE reads (extended XYZ first).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be parsed or holds no frames, or a frame is invalid (the
            message names the frame).
    """
    from ase.io import read

    if not os.path.isfile(path):
        raise FileNotFoundError(f"structure file {path} does not exist")
    try:
        frames = read(path, index=index, format=format)
    except Exception as error:  # noqa: BLE001 - ASE raises many types for one problem: unreadable file
        raise ValueError(f"cannot read structures from {path}: {error}") from error
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise ValueError(f"{path} holds no structures")
    structures = []
    for k, atoms in enumerate(frames):
        try:
            structures.append(AtomicStructure.from_atoms(atoms))
        except ValueError as error:
            raise ValueError(f"{path}, frame {k}: {error}") from error
    return structures


def write_structures(path: str | os.PathLike, structures: Sequence[AtomicStructure], format: str | None = None) -> None:
    """Write structures and their labels (extended XYZ for ``.xyz``), atomically."""
    from ase.io import write

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    root, extension = os.path.splitext(path)
    tmp = f"{root}.tmp{os.getpid()}{extension}"
    fmt = format or ("extxyz" if extension == ".xyz" else None)
    write(tmp, [s.to_atoms() for s in structures], format=fmt)
    os.replace(tmp, path)
