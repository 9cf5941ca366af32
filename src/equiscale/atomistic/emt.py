"""Reference data from ASE's EMT calculator: Langevin molecular dynamics of an fcc crystal.

EMT (effective-medium theory) ships with ASE and covers Al, Cu, Ag, Au, Ni, Pd, Pt (and H, C, N,
O roughly). It gives real many-body physics at no cost, the default data of the demo and tests.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from equiscale.atomistic.settings import EMT_ELEMENTS
from equiscale.atomistic.structures import AtomicStructure, write_structures

__all__ = ["EMT_ELEMENTS", "emt_frames", "write_emt_dataset", "label_structures", "langevin_frames", "strained"]


def emt_frames(
    element: str = "Cu",
    size: int = 3,
    frames: int = 100,
    temperature: float = 800.0,
    interval: int = 10,
    timestep: float = 2.0,
    seed: int = 0,
    rattle: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> list[AtomicStructure]:
    """Frames of Langevin MD of an fcc ``element`` supercell of ``size^3`` conventional cells.

    Args:
        element: one of :data:`EMT_ELEMENTS`.
        size: conventional cells per side (``4 size^3`` atoms).
        frames: number of frames to record.
        temperature: Langevin thermostat temperature in K (velocities start from Maxwell-Boltzmann).
        interval: MD steps between recorded frames (the first frame after one interval).
        timestep: fs.
        seed: seeds the initial velocities, the rattle and the thermostat noise.
        rattle: standard deviation (Angstrom) of random displacements added to the start.
        progress: called with the number of frames recorded so far.

    Returns:
        Periodic structures with energy (eV), forces (eV/Angstrom) and stress (eV/Angstrom^3).
    """
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    from ase.md import velocitydistribution

    if element not in EMT_ELEMENTS:
        raise ValueError(f"EMT has parameters for {', '.join(EMT_ELEMENTS)}; got element {element!r}")
    for name, value in (("size", size), ("frames", frames), ("interval", interval)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 K, got {temperature!r}")
    rng = np.random.default_rng(seed)
    atoms = bulk(element, "fcc", cubic=True).repeat((size, size, size))
    if rattle > 0:
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.calc = EMT()
    # thermalize_momenta is MaxwellBoltzmannDistribution's new name (ASE >= 3.28)
    thermalize = getattr(velocitydistribution, "thermalize_momenta", None) or velocitydistribution.MaxwellBoltzmannDistribution
    thermalize(atoms, temperature_K=temperature, rng=rng)
    dynamics = Langevin(atoms, timestep * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng)
    out: list[AtomicStructure] = []
    for k in range(frames):
        dynamics.run(interval)
        out.append(
            AtomicStructure(
                atoms.get_positions(), atoms.get_atomic_numbers(), atoms.get_cell()[:], atoms.get_pbc(),
                atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False),
            )
        )
        if progress is not None:
            progress(k + 1)
    return out


def write_emt_dataset(path: str | os.PathLike, element: str = "Cu", size: int = 3, frames: int = 100,
                      temperature: float = 800.0, seed: int = 0, show_progress: bool = True, **options: float) -> int:
    """Generate :func:`emt_frames` and write them as extended XYZ to ``path``; return the frame count."""
    bar = None
    if show_progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=frames, desc=f"EMT {element} {temperature:g} K", unit="frame")
        except ImportError:
            bar = None
    done = [0]

    def advance(count: int) -> None:
        if bar is not None:
            bar.update(count - done[0])
        done[0] = count

    structures = emt_frames(element, size, frames, temperature, seed=seed, progress=advance, **options)
    if bar is not None:
        bar.close()
    write_structures(path, structures)
    return len(structures)


def label_structures(structures: Sequence[Any], calculator: Any) -> list[AtomicStructure]:
    """``structures`` (``ase.Atoms`` or :class:`AtomicStructure`) labelled by the ASE ``calculator``:
    energy (eV), forces (eV/A) and, for periodic cells, stress (eV/A^3)."""
    out = []
    for item in structures:
        atoms = item.to_atoms() if isinstance(item, AtomicStructure) else item.copy()
        atoms.calc = calculator
        periodic = bool(np.all(atoms.get_pbc()))
        out.append(AtomicStructure(atoms.get_positions(), atoms.get_atomic_numbers(), atoms.get_cell()[:],
                                   atoms.get_pbc(), atoms.get_potential_energy(), atoms.get_forces(),
                                   atoms.get_stress(voigt=False) if periodic else None))
    return out


def langevin_frames(atoms: Any, calculator: Any, frames: int, temperature: float, interval: int = 10,
                    timestep: float = 2.0, seed: int = 0, warmup: int = 0) -> list[AtomicStructure]:
    """Frames of Langevin MD at ``temperature`` (K) from a copy of ``atoms`` with any ASE ``calculator``.

    Args:
        atoms: the start (``ase.Atoms`` or :class:`AtomicStructure`); velocities drawn at ``temperature``.
        calculator: the reference, e.g. ``ase.calculators.emt.EMT()``.
        frames: frames recorded, every ``interval`` steps of ``timestep`` fs, after ``warmup`` intervals.
        seed: seeds the velocities and the thermostat noise.

    Returns:
        Labelled structures (energy, forces, stress for periodic cells).
    """
    from ase import units
    from ase.md import velocitydistribution
    from ase.md.langevin import Langevin

    atoms = atoms.to_atoms() if isinstance(atoms, AtomicStructure) else atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    thermalize = getattr(velocitydistribution, "thermalize_momenta", None) or velocitydistribution.MaxwellBoltzmannDistribution
    thermalize(atoms, temperature_K=temperature, rng=rng)
    dynamics = Langevin(atoms, timestep * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng)
    dynamics.run(interval * warmup)
    out = []
    for _ in range(frames):
        dynamics.run(interval)
        out.extend(label_structures([atoms], calculator))
    return out


def strained(structures: Sequence[AtomicStructure], strain: float, calculator: Any) -> list[AtomicStructure]:
    """``structures`` with cell and positions scaled by ``1 + strain`` (isotropic), relabelled by ``calculator``."""
    scaled = []
    for structure in structures:
        atoms = structure.to_atoms()
        atoms.set_cell(atoms.get_cell()[:] * (1 + strain), scale_atoms=True)
        scaled.append(atoms)
    return label_structures(scaled, calculator)
