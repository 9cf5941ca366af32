"""The atomistic application as equiscale discovers it: its commands, checkpoint kind and demo section.

Declared in ``pyproject.toml`` as the entry point
``atomistic = "equiscale.atomistic.app:APPLICATION"`` of the group ``equiscale.applications``.
Light: the settings classes are plain dataclasses, everything heavy is named by ``"module:function"``
and imported only when used. ``train potential`` runs under
``torchrun --nproc_per_node K -m equiscale.cli train potential ...`` as well.
"""
from __future__ import annotations

from equiscale.applications import Application, CheckpointKind, Command, DemoSection
from equiscale.atomistic.export import ExportPotential
from equiscale.atomistic.settings import DataEMT, EvaluatePotential, LearnPotential, TrainSettings

__all__ = ["APPLICATION"]

CONFIG_EXAMPLE = """\
example --config file (YAML; any option, with _ or -):

  data: cu.xyz
  out: runs/cu
  max_time: 600
  lmax: 2
  channels: 32
  cutoff: 5.0
"""

APPLICATION = Application(
    name="atomistic",
    description="equivariant interatomic potentials: EMT reference data, training, evaluation, ASE calculator",
    commands=(
        Command("data", "emt", DataEMT, run="equiscale.atomistic.commands:data_emt",
                help="reference data from ASE's EMT calculator (fcc MD frames)",
                description="Langevin MD of an fcc supercell with ASE's EMT calculator; writes frames with energy "
                "(eV), forces (eV/A) and stress (eV/A^3) as extended XYZ."),
        Command("train", "potential", TrainSettings, run="equiscale.atomistic.commands:train_potential",
                help="train an equivariant interatomic potential",
                description="Trains EquivariantPotential on energies, forces and stresses; writes DIR/last.pt every "
                "epoch and DIR/best.pt on improvement (validation and best.pt use the moving average of the weights "
                "when --ema-decay is set). Settings come from the defaults, then --config FILE.yaml, then the "
                "options given here; --resume continues with the run's saved settings. A time budget (--max-time) "
                "without --epochs trains until the budget. Runs under torchrun on several processes.",
                epilog=CONFIG_EXAMPLE),
        Command("evaluate", "potential", EvaluatePotential, run="equiscale.atomistic.evaluate:evaluate_potential_command",
                help="errors of a trained potential and a parity plot",
                description="Predicts every structure of --data and prints the energy MAE per atom (meV/atom) and "
                "per structure (meV), the force MAE/RMSE (meV/A) and the stress MAE (meV/A^3); writes the parity "
                "plot (energies and forces) beside the checkpoint unless --no-figures. A committee (a run directory trained "
                "with --ensemble N) gets the errors of its mean, the scale factor of its spread (maximum likelihood, "
                "fitted on --calibration), the Spearman correlation of spread and error, a calibration plot, and "
                "out-of-distribution rows side by side with --shifts hot strain."),
        Command("export", "potential", ExportPotential, run="equiscale.atomistic.export:export_potential",
                help="a trained potential as a file plain PyTorch or C++ runs (AOTInductor)",
                description="Writes energy, forces and stress (autograd inside) of one structure as an "
                "AOTInductor package (--format aoti) or a torch.export program (--format program), loadable "
                "without equiscale. Inputs: positions, numbers, cell, and a neighbour list (edge_index, shifts) "
                "computed by the caller; see docs/deploy.md."),
        Command("learn", "potential", LearnPotential, run="equiscale.atomistic.active_learning:learn_potential",
                help="active learning: committee MD, label where the force spread is high, retrain",
                description="Starts from a few labelled frames of the crystal, then in each round trains a committee "
                "(warm start), runs Langevin MD with it, labels the frames whose largest per-atom force spread passes "
                "the threshold with the reference calculator (emt, or any ASE calculator as module:Class) and adds "
                "them; the MD stops when the spread explodes. Prints per round the frames labelled, the test error "
                "and the longest stable MD; DIR/round-R is each round's committee, DIR/rounds.json the record; "
                "--resume continues after the last finished round."),
    ),
    checkpoints=(CheckpointKind("potential", checks="equiscale.atomistic.checks:potential_checks",
                                describe="an interatomic potential (`equiscale train potential`)"),),
    demo=(DemoSection("atomistic", "equiscale.atomistic.demo:section_atomistic", order=20),
          DemoSection("uncertainty", "equiscale.atomistic.demo_uncertainty:section_uncertainty", order=25)),
    extras=(("ase", "atoms"), ("vesin", "atoms")),
)
