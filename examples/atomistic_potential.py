"""Atomistic scale: EMT copper data -> an equivariant potential -> molecular dynamics through ASE.

    python examples/atomistic_potential.py              # about a minute on 2 CPU cores
    python examples/atomistic_potential.py --tiny       # a few seconds (what the tests run)

``EQUISCALE_EXAMPLE_TINY=1`` in the environment has the same effect as ``--tiny``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Generate data, train, evaluate, run NVE dynamics; return the measured numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", default=bool(os.environ.get("EQUISCALE_EXAMPLE_TINY")),
                        help="tiny sizes, for tests")
    parser.add_argument("--out", default=None, help="where to keep data and the run (default: a temporary folder)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    frames, seconds, md_steps = (8, 3.0, 10) if args.tiny else (40, 45.0, 200)
    model_size = dict(lmax=1, channels=4, layers=1) if args.tiny else dict(lmax=2, channels=16, layers=2)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        # --8<-- [start:data]
        from equiscale.atomistic import emt_frames, write_structures

        # Langevin MD of 32 copper atoms at 800 K with ASE's EMT: energies, forces and stresses.
        structures = emt_frames("Cu", size=2, frames=frames + 4, temperature=800.0, interval=5, seed=0)
        write_structures(out / "train.xyz", structures[:frames])
        write_structures(out / "test.xyz", structures[frames:])
        # --8<-- [end:data]

        # --8<-- [start:train]
        from equiscale.atomistic import TrainSettings, evaluate_potential, train_potential

        settings = TrainSettings(data=str(out / "train.xyz"), out=str(out / "run"), max_time=seconds, epochs=10_000,
                                 batch_size=2, lr=1e-2, cutoff=4.5, progress=False, **model_size)
        summary = train_potential(settings)
        metrics = evaluate_potential(out / "run" / "best.pt", out / "test.xyz")
        print(f"{summary['epochs']} epochs; held-out force MAE {metrics['force_mae']:.1f} meV/A, "
              f"energy MAE {metrics['energy_mae_per_atom']:.2f} meV/atom")
        # --8<-- [end:train]

        # --8<-- [start:md]
        from ase import units
        from ase.md import velocitydistribution
        from ase.md.verlet import VelocityVerlet

        from equiscale.atomistic import Calculator

        atoms = structures[-1].to_atoms()
        atoms.calc = Calculator(out / "run" / "best.pt", dtype="float64")
        # Maxwell-Boltzmann velocities at 300 K (the function is thermalize_momenta from ASE 3.28 on)
        thermalize = getattr(velocitydistribution, "thermalize_momenta", velocitydistribution.MaxwellBoltzmannDistribution)
        thermalize(atoms, temperature_K=300, rng=np.random.default_rng(0))
        start = atoms.get_total_energy()
        VelocityVerlet(atoms, timestep=1.0 * units.fs).run(md_steps)
        change = 1000 * (atoms.get_total_energy() - start) / len(atoms)
        print(f"{md_steps} fs of NVE dynamics: total energy changed by {change:+.3f} meV/atom")
        # --8<-- [end:md]
    return {"force_mae": metrics["force_mae"], "energy_change": change}


if __name__ == "__main__":
    main()
