"""Command-line tasks of the atomistic scale (registered by ``equiscale.cli``)::

    equiscale data emt --element Cu --size 3 --frames 100 --temperature 800 --out cu.xyz
    equiscale train potential --data cu.xyz [--valid v.xyz] [--config c.yaml] [--epochs N] [--out runs/cu] [--resume]
    equiscale evaluate potential runs/cu/best.pt --data test.xyz [--plot parity.png]

Training runs under ``torchrun --nproc_per_node K -m equiscale.cli train potential ...`` as well.
Heavy imports happen inside the command functions.
"""
from __future__ import annotations

import argparse
import json
from typing import Any


def _data_emt(args: argparse.Namespace) -> int:
    from equiscale.atomistic.emt import write_emt_dataset

    count = write_emt_dataset(args.out, args.element, args.size, args.frames, args.temperature, seed=args.seed,
                              interval=args.interval, show_progress=not args.quiet)
    print(f"wrote {count} frames of {4 * args.size ** 3} {args.element} atoms to {args.out}")
    return 0


# Defaults of TrainSettings shown in --help (tests check that they agree).
TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 100, "batch_size": 4, "dtype": "float32", "device": "auto", "seed": 0,
                                  "valid_fraction": 0.1}
DEFAULT_OUT = "runs/potential"

CONFIG_EXAMPLE = """\
example --config file (YAML; any field of equiscale.atomistic.training.TrainSettings):

  data: cu.xyz
  out: runs/cu
  epochs: 50
  max_time: 600
  lmax: 2
  channels: 32
  cutoff: 5.0
"""


def _train_potential(args: argparse.Namespace) -> int:
    from pathlib import Path

    from equiscale.atomistic.training import TrainSettings, load_settings, train_potential
    from equiscale.configfile import check_setting_types, read_yaml_mapping

    overrides: dict[str, Any] = dict(data=args.data, valid=args.valid, out=args.out, epochs=args.epochs, seed=args.seed,
                                     batch_size=args.batch_size, max_time=args.max_time, dtype=args.dtype, device=args.device)
    if args.quiet:
        overrides["progress"] = False
    config = args.config
    from_file = read_yaml_mapping(config) if config is not None else {}
    check_setting_types(TrainSettings, from_file, f"config file {config}")
    if overrides["out"] is None and not from_file.get("out"):
        overrides["out"] = DEFAULT_OUT
    last = Path(overrides["out"] or from_file["out"]) / "last.pt"
    if args.resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume: {last} does not exist")
        from equiscale.train import load_checkpoint

        saved = load_checkpoint(last)["extra"]["settings"]
        overrides = {**saved, **{k: v for k, v in overrides.items() if v is not None}}
        config = None
    elif not (overrides["data"] or from_file.get("data")):
        raise ValueError("no training data: pass --data FILE (or set 'data:' in the --config file)")
    settings = load_settings(config, **overrides)
    summary = train_potential(settings, resume=args.resume)
    if summary.get("is_main", True):
        print(f"stopped after {summary['epochs']} epochs ({summary['stop_reason']}); best monitored loss "
              f"{summary['best']:.4g}; checkpoints in {settings.out}")
    return 0


def _evaluate_potential(args: argparse.Namespace) -> int:
    from equiscale.atomistic.evaluate import evaluate_potential
    from equiscale.check import checkpoint_kind

    kind = checkpoint_kind(args.checkpoint)
    if kind != "potential":
        raise ValueError(f"{args.checkpoint} holds a {kind} checkpoint, not a potential: use `equiscale evaluate {kind}`")
    metrics = evaluate_potential(args.checkpoint, args.data, plot=args.plot, batch_size=args.batch_size, dtype=args.dtype)
    units = {"energy": "meV/atom", "force": "meV/A", "stress": "meV/A^3"}
    for key, value in metrics.items():
        unit = units.get(key.split("_")[0], "") if key.endswith(("mae", "rmse")) else ""
        print(f"{key:12s} {value:12.4f} {unit}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(metrics, file, indent=1)
    if args.plot:
        print(f"parity plot: {args.plot}")
    return 0


def register(verbs: dict[str, argparse._SubParsersAction]) -> None:
    """Add ``data emt``, ``train potential`` and ``evaluate potential``."""
    from equiscale.cli import EpilogAsWritten

    parser = verbs["data"].add_parser("emt", help="reference data from ASE's EMT calculator (fcc MD frames)",
                                      description="Langevin MD of an fcc supercell with ASE's EMT calculator; "
                                      "writes frames with energy (eV), forces (eV/A) and stress (eV/A^3) as extended XYZ.")
    parser.add_argument("--element", default="Cu", help="Al, Cu, Ag, Au, Ni, Pd or Pt (default Cu)")
    parser.add_argument("--size", type=int, default=3, help="conventional cells per side: 4 N^3 atoms (default 3)")
    parser.add_argument("--frames", type=int, default=100, help="number of frames (default 100)")
    parser.add_argument("--temperature", type=float, default=800.0, help="thermostat temperature in K (default 800)")
    parser.add_argument("--interval", type=int, default=10, help="MD steps of 2 fs between frames (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seeds velocities and thermostat noise (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--out", required=True, help="output file (.xyz)")
    parser.set_defaults(run=_data_emt)

    parser = verbs["train"].add_parser("potential", help="train an equivariant interatomic potential",
                                       description="Train EquivariantPotential on energies, forces and stresses; "
                                       "writes DIR/last.pt every epoch and DIR/best.pt on improvement (both hold the "
                                       "moving average of the weights). Settings come from the defaults of "
                                       "equiscale.atomistic.training.TrainSettings, then --config FILE.yaml, then the "
                                       "options given here; --resume continues with the run's saved settings.",
                                       epilog=CONFIG_EXAMPLE, formatter_class=EpilogAsWritten)
    parser.add_argument("--data", help="training structures with energies/forces (any file ASE reads); "
                        "required here or in --config")
    parser.add_argument("--valid", help="validation structures (default: a random 10%% of --data)")
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML file of settings, any field of TrainSettings (model size, loss weights, lr, ...); "
                        "default: none; options given here win over the file")
    parser.add_argument("--epochs", type=int, help=f"maximum epochs (default {TRAIN_DEFAULTS['epochs']})")
    parser.add_argument("--batch-size", type=int, help=f"structures per batch (default {TRAIN_DEFAULTS['batch_size']})")
    parser.add_argument("--max-time", type=float, help="training time budget in seconds (default: no limit)")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="precision of training (default float32)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto: cuda if available)")
    parser.add_argument("--seed", type=int, help="seeds the split, initial weights and batch order (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/last.pt with its settings")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--out", help=f"run directory (default {DEFAULT_OUT})")
    parser.set_defaults(run=_train_potential)

    parser = verbs["evaluate"].add_parser("potential", help="errors of a trained potential and a parity plot",
                                          description="Predicts every structure of --data and prints the energy MAE "
                                          "(meV/atom), force MAE/RMSE (meV/A) and stress MAE (meV/A^3).")
    parser.add_argument("checkpoint", help="DIR/best.pt (or DIR/last.pt) written by `equiscale train potential`")
    parser.add_argument("--data", required=True, help="labelled structures (any file ASE reads)")
    parser.add_argument("--plot", help="parity plot PNG to write (default: none)")
    parser.add_argument("--json", help="write the metrics as JSON to this file (default: none)")
    parser.add_argument("--batch-size", type=int, default=8, help="structures per batch (default 8)")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="precision (default: the training precision)")
    parser.set_defaults(run=_evaluate_potential)
