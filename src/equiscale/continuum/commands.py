"""``equiscale data fluid``, ``equiscale train fluid`` and ``equiscale evaluate fluid``.

Registered through ``register(verbs)`` (see ``APPLICATION_COMMANDS`` in :mod:`equiscale.cli`).
Heavy modules are imported inside the command functions so that ``equiscale --help`` stays fast.

``train fluid`` reads its settings from, lowest precedence first: the defaults of
:class:`equiscale.continuum.training.FluidTrainConfig`, the saved ``config.json`` of the run when
resuming, a YAML file (``--config``), and the options given on the command line.
"""
from __future__ import annotations

import argparse
import math
from typing import Any

# Defaults of `train fluid`, the same as FluidTrainConfig's (kept here so that --help needs no torch).
TRAIN_DEFAULTS: dict[str, Any] = {
    "model": "gcnn", "group": "C4", "width": None, "blocks": 2, "kernel_size": 5, "fraction": 1.0,
    "validation_trajectories": 4, "epochs": 1000, "max_time": None, "batch_size": 16, "lr": 2e-3, "patience": None,
    "seed": 0, "rollout_steps": 1, "clock": "wall",
}
POSITIVE_INTS = ("width", "blocks", "kernel_size", "validation_trajectories", "epochs", "batch_size", "patience",
                 "rollout_steps")
POSITIVE_FLOATS = ("max_time", "lr")

CONFIG_EXAMPLE = """\
example --config file (YAML; any option, with _ for -, plus data and out):

  data: fluid.npz
  out: runs/gcnn
  model: gcnn
  width: 8
  max_time: 300
  clock: process
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy machine)")


def _data(args: argparse.Namespace) -> int:
    from equiscale.continuum.data import generate_fluid

    _set_threads(args.threads)
    data = generate_fluid(args.out, trajectories=args.trajectories, steps=args.steps, resolution=args.resolution,
                          viscosity=args.viscosity, dt=args.dt, seed=args.seed, progress=not args.quiet)
    print(f"wrote {args.out}: vorticity {list(data.vorticity.shape)}, dt={data.dt}, viscosity={data.viscosity}")
    return 0


def _check_ranges(values: dict[str, Any], source: str) -> None:
    for name in POSITIVE_INTS + POSITIVE_FLOATS:
        value = values.get(name)
        if value is not None and not value > 0:
            raise ValueError(f"{source}: '{name}' must be positive, got {value!r}")
    fraction = values.get("fraction")
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"{source}: 'fraction' must be in (0, 1], got {fraction!r}")
    if values.get("clock") not in (None, "wall", "process"):
        raise ValueError(f"{source}: 'clock' must be wall or process, got {values['clock']!r}")


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The merged settings of ``train fluid``: the config fields plus ``data`` and ``out``."""
    import json
    from pathlib import Path

    from equiscale.configfile import merge_settings
    from equiscale.continuum.training import FluidTrainConfig

    base: dict[str, Any] = {}
    if args.resume and args.config is None and args.out is not None:
        saved = Path(args.out) / "config.json"
        if saved.is_file():  # continue with the run's own settings unless told otherwise
            record = json.loads(saved.read_text())
            base = {k: v for k, v in record.get("train", {}).items() if k in TRAIN_DEFAULTS}
            if record.get("data"):
                base["data"] = record["data"]
    options = {name: getattr(args, name) for name in (*TRAIN_DEFAULTS, "data", "out")}
    values = merge_settings(FluidTrainConfig, args.config, options, extra={"data": "str", "out": "str"}, base=base)
    _check_ranges(values, f"config file {args.config}" if args.config else "train fluid")
    if not values.get("data"):
        raise ValueError("no training data: pass --data FILE.npz (or set 'data:' in the --config file)")
    merged = {**TRAIN_DEFAULTS, **values}
    merged.setdefault("out", None)
    if merged["out"] is None:
        merged["out"] = f"runs/fluid-{merged['model']}"
    return merged


def _train(args: argparse.Namespace) -> int:
    from equiscale.continuum.training import FluidTrainConfig, train_fluid

    _set_threads(args.threads)
    settings = train_settings(args)
    config = FluidTrainConfig(**{k: settings[k] for k in TRAIN_DEFAULTS})
    summary = train_fluid(settings["data"], settings["out"], config, resume=args.resume, progress=not args.quiet)
    print(f"trained {config.model} in {settings['out']}: {summary['parameters']} parameters, {summary['steps']} steps, "
          f"{summary['train_time']:.0f} s, best validation loss {summary['best']:.3e}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from equiscale.check import checkpoint_kind
    from equiscale.continuum.evaluate import evaluate_runs

    _set_threads(args.threads)
    for run in args.runs:
        kind = checkpoint_kind(run)
        if kind != "fluid":
            raise ValueError(f"{run} holds a {kind} checkpoint, not a fluid run: use `equiscale evaluate {kind}`")
    report = evaluate_runs(args.runs, args.data, out=args.out, rollout=args.rollout, figures=not args.no_figures,
                           progress=not args.quiet)
    print(report)
    return 0


def _default(name: str) -> str:
    value = TRAIN_DEFAULTS[name]
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def register(verbs: dict[str, Any]) -> None:
    """Add ``fluid`` under the ``data``, ``train`` and ``evaluate`` verbs."""
    from equiscale.cli import EpilogAsWritten

    data = verbs["data"].add_parser(
        "fluid", help="simulate 2D decaying turbulence (vorticity) on a periodic square",
        description="Pseudo-spectral Navier-Stokes in vorticity form on [0, 2 pi)^2 from random smooth initial "
        "vorticity; writes an .npz with vorticity float32 [N, T + 1, R, R], dt, viscosity and domain_size. "
        "An interrupted run resumes when started again with the same options.")
    data.add_argument("--out", required=True, help="output .npz file")
    data.add_argument("--trajectories", type=_positive_int, default=32, help="number of trajectories N (default 32)")
    data.add_argument("--steps", type=_positive_int, default=50, help="saved steps T after the initial frame (default 50)")
    data.add_argument("--resolution", type=_positive_int, default=64, help="grid points per side R (default 64)")
    data.add_argument("--viscosity", type=_positive_float, default=5e-3, help="kinematic viscosity (default 5e-3)")
    data.add_argument("--dt", type=_positive_float, default=0.2, help="time between saved frames (default 0.2)")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(data)
    data.set_defaults(run=_data)

    train = verbs["train"].add_parser(
        "fluid", help="train a one-step fluid surrogate (G-CNN, CNN or augmented CNN)",
        description="Trains a model that maps vorticity at t to t + dt on the trajectories of --data (the last "
        "--validation-trajectories are held out for validation and early stopping). Writes config.json, last.pt, "
        "best.pt and history.json atomically to --out; --resume continues an interrupted run with its saved "
        "settings. Settings come from the defaults, then --config FILE.yaml, then the options given here.",
        epilog=CONFIG_EXAMPLE, formatter_class=EpilogAsWritten)
    train.add_argument("--config", default=None, metavar="FILE.yaml",
                       help="YAML file of settings: any option below with _ for - (max_time: 300), plus data and out "
                       "(default: none; options given here win over the file)")
    train.add_argument("--data", default=None, help="fluid .npz (see `equiscale data fluid`); required here or in --config")
    train.add_argument("--model", default=None, choices=["gcnn", "cnn", "cnn-aug"],
                       help="which surrogate: C(4)/D(4) G-CNN, plain CNN, or CNN trained on randomly rotated data "
                       "(default gcnn)")
    train.add_argument("--out", default=None, help="run directory (default runs/fluid-MODEL)")
    train.add_argument("--group", default=None, choices=["C4", "D4"], help="G-CNN group / augmentation group (default C4)")
    train.add_argument("--width", type=_positive_int, default=None,
                       help="channels (G-CNN: regular fields; default 8); the CNN default matches the G-CNN's parameters")
    train.add_argument("--blocks", type=_positive_int, default=None, help=f"residual blocks (default {_default('blocks')})")
    train.add_argument("--kernel-size", type=_positive_int, default=None,
                       help=f"odd convolution kernel size (default {_default('kernel_size')})")
    train.add_argument("--fraction", type=_fraction, default=None,
                       help=f"fraction of the training trajectories used (default {_default('fraction')})")
    train.add_argument("--validation-trajectories", type=_positive_int, default=None,
                       help=f"held-out trajectories at the end of the file (default {_default('validation_trajectories')})")
    train.add_argument("--epochs", type=_positive_int, default=None, help=f"maximum epochs (default {_default('epochs')})")
    train.add_argument("--max-time", type=_positive_float, default=None,
                       help="training time budget in seconds (time spent in training steps, kept across --resume; "
                       "default: no limit)")
    train.add_argument("--clock", choices=["wall", "process"], default=None,
                       help="measure --max-time in wall-clock time or in this process's CPU time (fairer on a "
                       "shared machine; with --threads 1 one CPU second per second) (default wall)")
    train.add_argument("--batch-size", type=_positive_int, default=None, help=f"batch size (default {_default('batch_size')})")
    train.add_argument("--lr", type=_positive_float, default=None, help=f"Adam learning rate (default {_default('lr')})")
    train.add_argument("--patience", type=_positive_int, default=None,
                       help="early stopping after this many epochs without improvement (default: none)")
    train.add_argument("--rollout-steps", type=_positive_int, default=None,
                       help="train on rollouts of this many steps (default 1: one-step pairs)")
    train.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    train.add_argument("--resume", action="store_true", help="continue from DIR/last.pt")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(train)
    train.set_defaults(run=_train)

    evaluate = verbs["evaluate"].add_parser(
        "fluid", help="one-step and rollout errors, equivariance error and figures of trained fluid models",
        description="Evaluates one or more run directories on --data (all its trajectories): one-step and "
        "autoregressive rollout relative L2 errors, the equivariance error under 90-degree rotations, and PNG "
        "figures. Writes report.md, metrics.json and the figures to --out (default: the first run directory).")
    evaluate.add_argument("runs", nargs="+", help="run directories written by `equiscale train fluid`")
    evaluate.add_argument("--data", required=True, help="fluid .npz to evaluate on (held-out trajectories)")
    evaluate.add_argument("--out", default=None, help="directory for report and figures (default: the first run)")
    evaluate.add_argument("--rollout", type=_positive_int, default=25, help="rollout length in steps (default 25)")
    evaluate.add_argument("--no-figures", action="store_true", help="skip the PNG figures (no matplotlib needed)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(evaluate)
    evaluate.set_defaults(run=_evaluate)
