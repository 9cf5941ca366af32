"""``equiscale data fluid``, ``equiscale train fluid`` and ``equiscale evaluate fluid``.

Registered through ``register(verbs)`` (see ``APPLICATION_COMMANDS`` in :mod:`equiscale.cli`).
Heavy modules are imported inside the command functions so that ``equiscale --help`` stays fast.
"""
from __future__ import annotations

import argparse
import math
from typing import Any


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


def _train(args: argparse.Namespace) -> int:
    from equiscale.continuum.training import FluidTrainConfig, train_fluid

    _set_threads(args.threads)
    config = FluidTrainConfig(
        model=args.model, group=args.group, width=args.width, blocks=args.blocks, kernel_size=args.kernel_size,
        fraction=args.fraction, validation_trajectories=args.validation_trajectories, epochs=args.epochs,
        max_time=args.max_time, batch_size=args.batch_size, lr=args.lr, patience=args.patience, seed=args.seed,
        rollout_steps=args.rollout_steps, clock=args.clock)
    summary = train_fluid(args.data, args.out, config, resume=args.resume, progress=not args.quiet)
    print(f"trained {args.model} in {args.out}: {summary['parameters']} parameters, {summary['steps']} steps, "
          f"{summary['train_time']:.0f} s, best validation loss {summary['best']:.3e}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from equiscale.continuum.evaluate import evaluate_runs

    _set_threads(args.threads)
    report = evaluate_runs(args.runs, args.data, out=args.out, rollout=args.rollout, figures=not args.no_figures,
                           progress=not args.quiet)
    print(report)
    return 0


def register(verbs: dict[str, Any]) -> None:
    """Add ``fluid`` under the ``data``, ``train`` and ``evaluate`` verbs."""
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
        "--validation-trajectories are held out for validation and early stopping). Writes last.pt and best.pt "
        "atomically to --out; --resume continues an interrupted run.")
    train.add_argument("--data", required=True, help="fluid .npz (see `equiscale data fluid`)")
    train.add_argument("--model", required=True, choices=["gcnn", "cnn", "cnn-aug"], help="which surrogate")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--group", default="C4", choices=["C4", "D4"], help="G-CNN group / augmentation group (default C4)")
    train.add_argument("--width", type=_positive_int, default=None,
                       help="channels (G-CNN: regular fields; default 8); the CNN default matches the G-CNN's parameters")
    train.add_argument("--blocks", type=_positive_int, default=2, help="residual blocks (default 2)")
    train.add_argument("--kernel-size", type=_positive_int, default=5, help="kernel size (default 5)")
    train.add_argument("--fraction", type=_fraction, default=1.0, help="fraction of the training trajectories used (default 1)")
    train.add_argument("--validation-trajectories", type=_positive_int, default=4, help="held-out trajectories (default 4)")
    train.add_argument("--epochs", type=_positive_int, default=1000, help="maximum epochs (default 1000)")
    train.add_argument("--max-time", type=_positive_float, default=None,
                       help="training time budget in seconds (time spent in training steps, kept across --resume)")
    train.add_argument("--clock", choices=["wall", "process"], default="wall",
                       help="measure --max-time in wall-clock time or in this process's CPU time (fairer on a "
                       "shared machine; with --threads 1 one CPU second per second)")
    train.add_argument("--batch-size", type=_positive_int, default=16, help="batch size (default 16)")
    train.add_argument("--lr", type=_positive_float, default=2e-3, help="Adam learning rate (default 2e-3)")
    train.add_argument("--patience", type=_positive_int, default=None, help="early stopping patience in epochs")
    train.add_argument("--rollout-steps", type=_positive_int, default=1,
                       help="train on rollouts of this many steps (default 1: one-step pairs)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
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
    evaluate.add_argument("--out", default=None, help="directory for report and figures")
    evaluate.add_argument("--rollout", type=_positive_int, default=25, help="rollout length in steps (default 25)")
    evaluate.add_argument("--no-figures", action="store_true", help="skip the PNG figures (no matplotlib needed)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(evaluate)
    evaluate.set_defaults(run=_evaluate)
