"""``equiscale train velocity`` and ``equiscale train efield``: the steerable demonstrations as commands.

Registered through ``register(verbs)`` (add ``"equiscale.continuum.steerable_commands"`` to
``APPLICATION_COMMANDS`` in :mod:`equiscale.cli`). Each trains its models with the shared Trainer
(checkpoints in ``DIR/<model>/``, ``--resume`` continues them), evaluates them and writes
``DIR/report.md`` with a table and PNG figures beside it (:mod:`equiscale.fields`). Heavy modules
are imported inside the command functions so that ``equiscale --help`` stays fast.
"""
from __future__ import annotations

import argparse
from typing import Any

from equiscale.continuum.commands import _positive_float, _positive_int  # the same argument types as `train fluid`


_NOT_SETTINGS = {"config", "run", "command", "task", "debug"}


def _with_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Fill the options not given on the command line from ``--config FILE.yaml`` (keys: option names)."""
    if args.config is not None:
        from equiscale.configfile import read_yaml_mapping

        actions = {action.dest: action for action in parser._actions}
        for key, value in read_yaml_mapping(args.config).items():
            dest = key.replace("-", "_")
            if dest in _NOT_SETTINGS or dest not in actions:
                known = ", ".join(sorted(d for d in actions if d not in _NOT_SETTINGS and d != "help"))
                raise ValueError(f"config file {args.config}: unknown setting {key!r} (known: {known})")
            if getattr(args, dest) != parser.get_default(dest):
                continue  # the command line wins
            action = actions[dest]
            if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                if not isinstance(value, bool):
                    raise ValueError(f"config file {args.config}: {key} must be true or false, got {value!r}")
            elif value is not None and action.type is not None:
                try:
                    value = action.type(str(value))
                except (argparse.ArgumentTypeError, ValueError) as error:
                    raise ValueError(f"config file {args.config}: {key}: {error}") from None
            if action.choices is not None and value not in action.choices:
                raise ValueError(f"config file {args.config}: {key} must be one of {list(action.choices)}, got {value!r}")
            setattr(args, dest, value)
    for dest, what, option in (("out", "output directory", "--out DIR"), ("data", "training data", "--data FILE.npz")):
        if hasattr(args, dest) and getattr(args, dest) is None:
            raise ValueError(f"no {what}: pass {option} (or set '{dest}:' in the --config file)")
    return args


def _common(parser: argparse.ArgumentParser, budget: str) -> None:
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help="YAML file of settings (option names as keys, e.g. 'max-time: 120'); options given here "
                        "win (default: none)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output directory: report.md, figures, one run "
                        "folder per model; required here or in --config")
    parser.add_argument("--max-time", type=_positive_float, default=None, metavar="SECONDS",
                        help=f"training budget per model in seconds, of this process's CPU time unless --clock wall "
                        f"({budget})")
    parser.add_argument("--clock", choices=["process", "wall"], default="process",
                        help="measure --max-time as this process's CPU time (default: fair on a shared machine) or "
                        "wall-clock time")
    parser.add_argument("--seed", type=int, default=0, help="random seed of data splits, weights and checks (default 0)")
    parser.add_argument("--quick", action="store_true", help="tiny models and budgets, the same code paths (seconds)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted runs in DIR (same settings)")
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="torch CPU threads (default 1: these small models run best on one thread)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def _finish(result: dict[str, Any], out: str) -> int:
    table = [line for line in result["markdown"].splitlines() if line.startswith("|")]
    print("\n".join(table))
    print(f"wrote {out}/report.md and {len(result['figures'])} figures")
    return 0


def _velocity(args: argparse.Namespace) -> int:
    import torch
    from dataclasses import replace

    from equiscale.fields.velocity import VELOCITY_FULL, VELOCITY_QUICK, run_velocity_demo

    torch.set_num_threads(args.threads)
    settings = replace(VELOCITY_QUICK if args.quick else VELOCITY_FULL, clock=args.clock)
    result = run_velocity_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.quiet, data=args.data,
                               max_time=args.max_time, resume=args.resume, settings=settings)
    return _finish(result, args.out)


def _efield(args: argparse.Namespace) -> int:
    import torch
    from dataclasses import replace

    from equiscale.fields.efield import EFIELD_FULL, EFIELD_QUICK, run_efield_demo

    torch.set_num_threads(args.threads)
    settings = replace(EFIELD_QUICK if args.quick else EFIELD_FULL, clock=args.clock)
    result = run_efield_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.quiet, samples=args.samples,
                             resolution=args.resolution, max_time=args.max_time, resume=args.resume, settings=settings)
    return _finish(result, args.out)


def register(verbs: dict[str, Any]) -> None:
    """Add ``velocity`` and ``efield`` under the ``train`` verb."""
    velocity = verbs["train"].add_parser(
        "velocity", help="2D velocity one step ahead: C(8)-steerable CNN vs C(4) G-CNN vs CNN, report and figures",
        description="Turns the vorticity trajectories of --data (`equiscale data fluid`) into velocity fields "
        "(spectrally, through the stream function) and trains, for the same budget on the same trajectories, a "
        "C(8)-steerable CNN on velocity (one vector field in and out), the C(4) G-CNN on vorticity and a plain CNN on "
        "velocity of about the same parameter count. Evaluates one-step and 10-step rollout errors of velocity on "
        "held-out trajectories and the equivariance errors under 90-degree rotations and, on an analytic flow, under "
        "any angle. Writes DIR/report.md, metrics.json and PNG figures; checkpoints in DIR/<model>/. Defaults: 60 s "
        "of CPU time per model.")
    velocity.add_argument("--data", default=None, metavar="FILE.npz", help="fluid data: vorticity [N, T + 1, R, R] "
                          "(see `equiscale data fluid`); the last N/6 trajectories are held out for the test; "
                          "required here or in --config")
    _common(velocity, "default 60; --quick 2")
    velocity.set_defaults(run=lambda args: _velocity(_with_config(args, velocity)))

    efield = verbs["train"].add_parser(
        "efield", help="3D electrostatics rho -> E: SO(3)-steerable CNN vs plain 3D CNNs, report and figures",
        description="Generates random neutral charge densities (Gaussian blobs) on a periodic cube, solves for the "
        "electric field E = -grad(phi), laplacian(phi) = -rho, spectrally, and trains an SO(3)-steerable CNN (scalar "
        "in, gated scalar/vector/l=2 hidden fields, vector out) and plain 3D CNNs (same parameters; same width) for "
        "the same budget. Evaluates the held-out error and the equivariance error under the 24 rotations of the cube "
        "and, on an analytic charge distribution, under random rotations. Writes DIR/report.md, metrics.json and PNG "
        "figures; checkpoints in DIR/<model>/. Defaults: 512 samples of 16^3, 60 s of CPU time per model.")
    efield.add_argument("--samples", type=_positive_int, default=None,
                        help="charge densities generated (80%% training, 10%% validation, 10%% test; default 512, "
                        "--quick 12)")
    efield.add_argument("--resolution", type=_positive_int, default=None,
                        help="grid points per side (default 16, --quick 8)")
    _common(efield, "default 60; --quick 2")
    efield.set_defaults(run=lambda args: _efield(_with_config(args, efield)))
