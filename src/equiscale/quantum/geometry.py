"""Molecular geometries for DFT labelling: frames of one molecule, or the frames of a trajectory file.

By default (:func:`displaced_frames`) every frame starts from the molecule's equilibrium geometry in
ASE's G2 collection (``ase.build.molecule``; ``water``, ``ethanol`` and a few other common names are
aliases of G2 names), then

1. displaces every atom independently by an isotropic Gaussian: each Cartesian coordinate gets
   ``N(0, sigma^2)`` with ``sigma = sqrt(k_B T / kappa)``, the classical thermal spread of an atom in a
   harmonic well of stiffness ``kappa = 10 eV/A^2`` (a typical bond force constant), so 0.051 A at
   300 K and the same for every element; ``amplitude`` gives ``sigma`` in Angstrom directly;
2. rotates the displaced molecule about its centroid by a rotation drawn uniformly from SO(3)
   (Haar measure), and leaves the centroid at the origin.

Frame ``k`` uses the random generator ``numpy.random.default_rng([seed, k])``: a frame depends only
on the seed and its index, not on how the frames are split into shards or how often a run resumed.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

__all__ = ["ALIASES", "STIFFNESS", "Frame", "molecule_atoms", "displacement_sigma", "displaced_frames",
           "read_frames", "describe_displacements"]

ALIASES = {"water": "H2O", "ethanol": "CH3CH2OH", "methanol": "CH3OH", "methane": "CH4", "ammonia": "NH3",
           "benzene": "C6H6", "formaldehyde": "H2CO", "acetone": "CH3COCH3", "ethane": "C2H6",
           "ethylene": "C2H4", "acetylene": "C2H2", "hydrogen": "H2", "pyridine": "C5H5N", "formic-acid": "HCOOH",
           "acetic-acid": "CH3COOH", "hydrogen-fluoride": "HF", "lithium-hydride": "LiH"}
"""Common names accepted by ``--molecule`` besides ASE's G2 names."""

STIFFNESS = 10.0
"""kappa in eV/A^2 of the displacement model (see the module docstring)."""

BOLTZMANN = 8.617333262e-5
"""k_B in eV/K."""


class Frame(NamedTuple):
    """One geometry: atomic numbers ``(A,)`` and positions ``(A, 3)`` in Angstrom."""

    numbers: np.ndarray
    positions: np.ndarray


def molecule_atoms(name: str):
    """The ``ase.Atoms`` of a G2 molecule name or an alias (:data:`ALIASES`); ValueError if unknown."""
    from ase.build import molecule
    from ase.collections import g2

    key = ALIASES.get(name.lower(), name)
    if key not in g2.names:
        raise ValueError(f"unknown molecule {name!r}: use a name of ASE's G2 collection (e.g. H2O, CH3CH2OH, C6H6) "
                         f"or one of {', '.join(sorted(ALIASES))}, or give --structures FILE")
    return molecule(key)


def displacement_sigma(temperature: float, amplitude: float | None = None) -> float:
    """The rms displacement per coordinate in Angstrom: ``amplitude``, else ``sqrt(k_B T / kappa)``."""
    if amplitude is not None:
        return float(amplitude)
    return math.sqrt(BOLTZMANN * temperature / STIFFNESS)


def describe_displacements(temperature: float, amplitude: float | None = None, rotate: bool = True) -> str:
    """One sentence for the manifest: how the frames were drawn."""
    sigma = displacement_sigma(temperature, amplitude)
    source = (f"amplitude {sigma:g} A" if amplitude is not None
              else f"sqrt(k_B T / kappa), T = {temperature:g} K, kappa = {STIFFNESS:g} eV/A^2: {sigma:.4f} A")
    rotation = ", then a uniform random rotation about the centroid (centroid at the origin)" if rotate else ""
    return (f"each coordinate of each atom displaced by N(0, sigma^2), sigma = {source}{rotation}; "
            "frame k drawn with numpy.random.default_rng([seed, k])")


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn from the Haar measure on SO(3) (a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def displaced_frames(name: str, frames: int, temperature: float = 300.0, amplitude: float | None = None,
                     seed: int = 0, start: int = 0) -> Iterator[Frame]:
    """Frames ``start .. frames-1`` of the molecule ``name``, drawn as the module docstring says."""
    atoms = molecule_atoms(name)
    numbers = atoms.numbers.astype(np.int64)
    reference = atoms.positions - atoms.positions.mean(axis=0)
    sigma = displacement_sigma(temperature, amplitude)
    for k in range(start, frames):
        rng = np.random.default_rng([seed, k])
        displaced = reference + rng.normal(scale=sigma, size=reference.shape)
        displaced -= displaced.mean(axis=0)
        yield Frame(numbers, displaced @ _random_rotation(rng).T)


def read_frames(path: str, frames: int | None = None) -> list[Frame]:
    """The first ``frames`` (all when None) structures of a file ASE reads, as given (no displacement).

    Raises:
        ValueError: a file ASE cannot read, an empty file, or periodic structures.
    """
    import ase.io

    try:
        structures = ase.io.read(path, index=":" if frames is None else f":{frames}")
    except FileNotFoundError:
        raise ValueError(f"structure file {path} does not exist") from None
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read structures from {path}: {reason}") from None
    if not isinstance(structures, list):
        structures = [structures]
    if not structures:
        raise ValueError(f"{path} holds no structures")
    if any(atoms.pbc.any() for atoms in structures):
        raise ValueError(f"{path} holds periodic structures: molecular DFT labels need isolated molecules (pbc=False)")
    return [Frame(atoms.numbers.astype(np.int64), atoms.positions.astype(float)) for atoms in structures]
