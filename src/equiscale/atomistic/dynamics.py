"""Constant-energy (NVE) molecular dynamics with any ASE calculator, and its energy conservation.

    record = run_nve(atoms, Calculator("runs/cu/best.pt", dtype="float64"), duration_fs=1000)
    energy_drift(record)            # {"drift": meV/atom/ps, "fluctuation": meV/atom, ...}
    plot_energy(record, "md.png")   # potential, kinetic and total energy against time

Velocity Verlet conserves the total energy of a smooth potential up to an error that oscillates
with the time step squared; a steady drift means forces that are not the gradient of the energy,
a rough potential, or a time step too long. Units are ASE's: eV, Angstrom, fs here for time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EnergyRecord", "run_nve", "energy_drift", "plot_energy"]


@dataclass
class EnergyRecord:
    """Energies along a trajectory: ``time_fs``, ``potential`` and ``kinetic`` (eV), for ``atoms`` atoms."""

    time_fs: np.ndarray
    potential: np.ndarray
    kinetic: np.ndarray
    atoms: int

    @property
    def total(self) -> np.ndarray:
        """Potential plus kinetic energy (eV)."""
        return self.potential + self.kinetic

    @property
    def temperature(self) -> np.ndarray:
        """Instantaneous temperature (K) from the kinetic energy, 3N degrees of freedom."""
        from ase import units

        return 2 * self.kinetic / (3 * self.atoms * units.kB)


def run_nve(atoms: Any, calculator: Any, duration_fs: float = 1000.0, timestep_fs: float = 1.0,
            temperature: float | None = 300.0, seed: int = 0, interval: int = 1, progress: bool = False) -> EnergyRecord:
    """Velocity-Verlet MD of a copy of ``atoms`` with ``calculator`` for ``duration_fs``; energies every ``interval`` steps.

    Args:
        atoms: the starting ``ase.Atoms`` (not modified).
        calculator: any ASE calculator, e.g. :class:`equiscale.atomistic.Calculator`.
        duration_fs: simulated time in fs (``round(duration_fs / timestep_fs)`` steps).
        timestep_fs: time step in fs.
        temperature: draw Maxwell-Boltzmann velocities at this temperature (K), then remove the
            centre-of-mass motion; None keeps the velocities of ``atoms``.
        seed: seeds the velocities.
        interval: record the energies every this many steps (the first record is time 0).
        progress: show a progress bar.

    Raises:
        ValueError: a non-positive duration, time step or interval.
    """
    from ase import units
    from ase.md import velocitydistribution
    from ase.md.verlet import VelocityVerlet

    from equiscale.train.progress import progress_bar

    if not (duration_fs > 0 and timestep_fs > 0 and int(interval) == interval and interval >= 1):
        raise ValueError(f"need duration_fs > 0, timestep_fs > 0 and an integer interval >= 1; "
                         f"got {duration_fs}, {timestep_fs}, {interval}")
    steps = max(1, round(duration_fs / timestep_fs))
    atoms = atoms.copy()
    atoms.calc = calculator
    if temperature is not None:
        thermalize = getattr(velocitydistribution, "thermalize_momenta", None) or velocitydistribution.MaxwellBoltzmannDistribution
        thermalize(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
        velocitydistribution.Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    times: list[float] = []
    potential: list[float] = []
    kinetic: list[float] = []
    bar = progress_bar(total=steps, enabled=progress, desc="NVE molecular dynamics", unit="step", leave=False)

    def record() -> None:
        times.append(dynamics.nsteps * timestep_fs)
        potential.append(atoms.get_potential_energy())
        kinetic.append(atoms.get_kinetic_energy())
        if dynamics.nsteps:
            bar.update(interval)

    dynamics.attach(record, interval=interval)
    try:
        dynamics.run(steps)
    finally:
        bar.close()
    return EnergyRecord(np.asarray(times), np.asarray(potential), np.asarray(kinetic), len(atoms))


def energy_drift(record: EnergyRecord) -> dict[str, float]:
    """How well the total energy is conserved, per atom.

    Returns:
        ``drift``: slope of a straight-line fit of the total energy, meV/atom/ps;
        ``fluctuation``: standard deviation of the total energy about that line, meV/atom;
        ``kinetic_fluctuation``: standard deviation of the kinetic energy, meV/atom (the scale that
        the fluctuation of the total is small against);
        ``temperature``: mean temperature, K; ``duration``: ps.
    """
    time_ps = record.time_fs / 1000
    total = 1000 * record.total / record.atoms
    if len(time_ps) >= 2 and np.ptp(time_ps) > 0:
        slope, intercept = np.polyfit(time_ps, total, 1)
    else:
        slope, intercept = 0.0, float(total.mean())
    return {"drift": float(slope), "fluctuation": float(np.std(total - (slope * time_ps + intercept))),
            "kinetic_fluctuation": float(np.std(1000 * record.kinetic / record.atoms)),
            "temperature": float(record.temperature.mean()), "duration": float(np.ptp(time_ps)) if len(time_ps) else 0.0}


def plot_energy(record: EnergyRecord, path: str | os.PathLike, title: str = "") -> None:
    """Potential, kinetic and total energy per atom against time (top), and the total alone (bottom)."""
    from equiscale.plotting import pyplot, save_png

    plt = pyplot()
    time_ps = record.time_fs / 1000
    per_atom = lambda e: 1000 * (e - record.total[0]) / record.atoms  # noqa: E731  meV/atom from E_total(0)
    drift = energy_drift(record)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    top.plot(time_ps, per_atom(record.potential + record.kinetic[0]), label="potential (+ initial kinetic)")
    top.plot(time_ps, per_atom(record.kinetic + record.potential[0]), label="kinetic (+ initial potential)")
    top.plot(time_ps, per_atom(record.total), label="total", color="black")
    top.set_ylabel("energy - E_total(0) (meV/atom)")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    bottom.plot(time_ps, per_atom(record.total), color="black")
    bottom.set_ylabel("total energy (meV/atom)")
    bottom.set_xlabel("time (ps)")
    bottom.set_title(f"drift {drift['drift']:+.1e} meV/atom/ps, fluctuation {drift['fluctuation']:.1e} meV/atom", fontsize=9)
    bottom.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    save_png(figure, path, dpi=100)
