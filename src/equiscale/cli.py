"""The ``equiscale`` command. Each subcommand lives in its own module and registers here.

Errors a user can fix (bad options, bad files) print one line and exit with status 2;
``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="measure, live, the equivariance of the symmetry core",
        description="Measures the equivariance errors of the symmetry core (spherical harmonics, "
        "Wigner-D, Clebsch-Gordan, group representations) at random group elements and prints a table.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, same code paths")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    def run(args: argparse.Namespace) -> int:
        from equiscale.demo import run_demo

        run_demo(quick=args.quick, seed=args.seed)
        return 0

    parser.set_defaults(run=run)


# Modules whose ``register(verbs)`` adds a task under each verb, e.g. ``equiscale data fluid``.
# ``verbs`` maps "data", "train" and "evaluate" to argparse sub-parser collections. Keep these
# modules light: they import their heavy code inside the command functions.
APPLICATION_COMMANDS: list[str] = ["equiscale.continuum.commands", "equiscale.atomistic.commands"]

VERBS = {
    "data": "generate reference data",
    "train": "train a model",
    "evaluate": "evaluate a trained model",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="equiscale", description="Symmetry-aware deep learning for science.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_demo(subparsers)
    verbs = {}
    for verb, help_text in VERBS.items():
        verb_parser = subparsers.add_parser(verb, help=help_text, description=help_text)
        verbs[verb] = verb_parser.add_subparsers(dest="task", metavar="TASK")
        verbs[verb].required = True
    for module in APPLICATION_COMMANDS:
        importlib.import_module(module).register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, KeyError) as error:
        if args.debug:
            raise
        print(f"equiscale {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"equiscale {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
