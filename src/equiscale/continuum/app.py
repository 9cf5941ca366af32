"""The continuum application as equiscale discovers it: its commands, checkpoint kind and demo section.

Declared in ``pyproject.toml`` as the entry point
``continuum = "equiscale.continuum.app:APPLICATION"`` of the group ``equiscale.applications``.
Light: the settings classes are plain dataclasses, everything heavy is named by ``"module:function"``
and imported only when used.
"""
from __future__ import annotations

from equiscale.applications import Application, CheckpointKind, Command, DemoSection
from equiscale.continuum.export import ExportFluid
from equiscale.continuum.settings import DataFluid, EvaluateFluid, TrainFluid

__all__ = ["APPLICATION"]

CONFIG_EXAMPLE = """\
example --config file (YAML; any option, with _ for -, plus data and out):

  data: fluid.npz
  out: runs/gcnn
  model: gcnn
  width: 8
  max_time: 300
  clock: process
"""

APPLICATION = Application(
    name="continuum",
    description="2D fluid surrogates exactly equivariant to 90-degree rotations",
    commands=(
        Command("data", "fluid", DataFluid, run="equiscale.continuum.commands:data_fluid",
                help="simulate 2D decaying turbulence (vorticity) on a periodic square",
                description="Pseudo-spectral Navier-Stokes in vorticity form on [0, 2 pi)^2 from random smooth "
                "initial vorticity; writes an .npz with vorticity float32 [N, T + 1, R, R], dt, viscosity and "
                "domain_size. An interrupted run resumes when started again with the same options."),
        Command("train", "fluid", TrainFluid, run="equiscale.continuum.commands:train_fluid",
                help="train a one-step fluid surrogate (G-U-Net, U-Net, G-FNO, FNO, G-CNN, CNN, augmented CNN)",
                description="Trains a model that maps vorticity at t to t + dt on the trajectories of --data (the "
                "last --validation-trajectories are held out: best.pt and early stopping use their rollout error over "
                "--val-rollout steps; --pushforward, --noise and --curriculum train for stable rollouts, and the "
                "learning rate follows --schedule over the budget). Writes "
                "config.json, last.pt, best.pt and history.json atomically to --out; --resume continues an "
                "interrupted run with the settings saved in its checkpoint. Settings come from the defaults, then "
                "--config FILE.yaml, then the options given here. Runs under torchrun on several processes.",
                epilog=CONFIG_EXAMPLE),
        Command("evaluate", "fluid", EvaluateFluid, run="equiscale.continuum.commands:evaluate_fluid",
                help="errors, horizons, equivariance, energy spectra, enstrophy and figures of trained fluid models",
                description="Evaluates one or more run directories on --data (all its trajectories): one-step and "
                "autoregressive rollout relative L2 errors, the steps at which the error passes 0.5 and persistence, the "
                "equivariance error under 90-degree rotations, energy spectra and enstrophy of predicted and true "
                "fields, and PNG figures; runs trained at another resolution are evaluated as they are. A committee run directory (trained with "
                "--ensemble) is rolled out member by member: its mean is evaluated, and its per-pixel spread is calibrated "
                "and compared with the error in and out of distribution (--shifts viscosity rollout). Writes report.md, "
                "metrics.json and the figures to --out (default: the first run directory)."),
        Command("export", "fluid", ExportFluid, run="equiscale.continuum.export:export_fluid",
                help="a trained fluid surrogate as a file plain PyTorch or C++ runs (AOTInductor)",
                description="Writes one step of the surrogate, vorticity (B, H, W) at t -> t + dt on the training "
                "grid with a dynamic batch, as an AOTInductor package (--format aoti) or a torch.export program "
                "(--format program), loadable without equiscale; see docs/deploy.md."),
    ),
    checkpoints=(CheckpointKind("fluid", checks="equiscale.continuum.checks:fluid_checks",
                                describe="a fluid surrogate (`equiscale train fluid`)"),),
    demo=DemoSection("continuum", "equiscale.continuum.demo:section_continuum", order=10),
)
