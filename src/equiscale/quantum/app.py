"""The quantum application as equiscale discovers it: its commands, checkpoint kind and demo section.

Declared in ``pyproject.toml`` as the entry point ``quantum = "equiscale.quantum.app:APPLICATION"`` of
the group ``equiscale.applications``. Light: the settings classes are plain dataclasses, everything
heavy (torch, numpy, PySCF, Dask) is named by ``"module:function"`` and imported only when used.
"""
from __future__ import annotations

from equiscale.applications import Application, CheckpointKind, Command, DemoSection
from equiscale.quantum.settings import DataDFT, EvaluateHamiltonian, TrainHamiltonian

__all__ = ["APPLICATION"]

CONFIG_EXAMPLE = """\
example --config file (YAML; any option, with _ or -):

  data: water.dft
  out: runs/water
  max_time: 600
  clock: process
  lmax: 2
  channels: 16
  ema_decay: 0.99
"""

APPLICATION = Application(
    name="quantum",
    description="equivariant electronic structure: DFT labels from PySCF, Hamiltonian models, SCF from predicted H",
    commands=(
        Command("data", "dft", DataDFT, run="equiscale.quantum.commands:data_dft",
                help="label molecular frames with PySCF (Fock/KS, overlap, density, dipole, polarizability)",
                description="Restricted Kohn-Sham (or Hartree-Fock with --xc hf) on displaced, randomly rotated frames "
                "of a molecule (or the frames of --structures); writes a dataset directory of .npz shards with "
                "matrices in equiscale's irreps AO basis. Labels in parallel (local worker processes or a Dask "
                "scheduler) and resumes an interrupted run."),
        Command("train", "hamiltonian", TrainHamiltonian, run="equiscale.quantum.commands:train_hamiltonian",
                help="train an equivariant Hamiltonian model (or the augmented baseline)",
                description="Fits the Fock/KS matrix of a DFT dataset (MSE of the H entries in Hartree, plus optional "
                "energy, orbital-energy, dipole and polarizability terms); writes DIR/last.pt every epoch and "
                "DIR/best.pt on improvement. Settings come from the defaults, then --config FILE.yaml, then the "
                "options given here; --resume continues with the run's saved settings. A time budget (--max-time) "
                "without --epochs trains until the budget.",
                epilog=CONFIG_EXAMPLE),
        Command("evaluate", "hamiltonian", EvaluateHamiltonian, run="equiscale.quantum.commands:evaluate_hamiltonian",
                help="QH9 metrics and SCF iterations from the predicted H against PySCF's minao guess",
                description="Predicts H for every frame of --data and prints the MAE of H (micro-Hartree), of the "
                "occupied orbital energies, the cosine similarity of the occupied orbitals, the HOMO-LUMO gap "
                "error, and, on --scf-frames frames, PySCF's SCF iterations and wall time started from the predicted "
                "H and from minao (with the difference of the converged energies). Writes heatmaps of H, an "
                "orbital-energy parity plot and SCF convergence curves beside the checkpoint unless --no-figures."),
    ),
    checkpoints=(CheckpointKind("hamiltonian", checks="equiscale.quantum.checks:hamiltonian_checks",
                                describe="a Hamiltonian model (`equiscale train hamiltonian`)"),),
    demo=DemoSection("quantum", "equiscale.quantum.demo:section_quantum", order=40),
    extras=(("pyscf", "quantum"), ("dask", "quantum"), ("distributed", "quantum")),
)
