"""The ``equiscale`` command: ``data``, ``train``, ``evaluate``, ``check`` and ``demo``.

Each application registers its tasks under the verbs (``equiscale train fluid``, ``equiscale train
potential``, ...) from its own ``commands`` module; ``check`` and ``demo`` live here.

Errors a user can fix (bad options, missing or unreadable files, bad YAML, a checkpoint of the
wrong kind, a missing optional dependency) print one line, ``equiscale <command>: error: ...``, and
exit with status 2; ``--debug`` (before or after the subcommand) shows the full traceback instead.
Ctrl-C exits with status 130.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Sequence

# Modules whose ``register(verbs)`` adds a task under each verb, e.g. ``equiscale data fluid``.
# ``verbs`` maps "data", "train" and "evaluate" to argparse sub-parser collections. Keep these
# modules light: they import their heavy code inside the command functions.
APPLICATION_COMMANDS: list[str] = ["equiscale.continuum.commands", "equiscale.continuum.steerable_commands",
                                   "equiscale.atomistic.commands"]

VERBS = {
    "data": "generate reference data",
    "train": "train a model",
    "evaluate": "evaluate a trained model",
}

# Optional dependencies and the extra that installs each (named in the error when one is missing).
EXTRAS = {"ase": "atoms", "vesin": "atoms", "matplotlib": "plot", "mkdocs": "docs", "mkdocstrings": "docs"}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``PROG: error: MESSAGE (see PROG --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the usage error as one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class EpilogAsWritten(argparse.HelpFormatter):
    """Wraps descriptions to the terminal, but prints multi-line text (an example epilog) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    from equiscale.demo.sections import SECTION_NAMES

    parser = subparsers.add_parser(
        "demo",
        help="run every scale end to end and write a report with figures",
        description="Runs the demo sections in turn: continuum (simulate 2D turbulence; train a C(4) G-CNN, a CNN "
        "and a CNN with rotation augmentation for the same CPU time; compare one-step, rollout and equivariance errors), "
        "atomistic (EMT copper data; train the equivariant potential; held-out errors; 1 ps of NVE molecular dynamics "
        "through the ASE calculator) and the symmetry check (equivariance of the symmetry core and of every model "
        "trained above, in float64 and float32). Writes DIR/report.md after each section, with PNG figures beside "
        "it, and prints a summary table. Ctrl-C keeps the finished sections. The full demo takes about 4 minutes "
        "on 2 CPU cores, --quick about 1 minute.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and budgets, the same code paths (about 1 minute)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output directory (default runs/demo-YYYYmmdd-HHMMSS)")
    parser.add_argument("--sections", default=None, metavar="NAMES",
                        help=f"comma-separated sections to run, in order (default: all of {','.join(SECTION_NAMES)})")
    parser.add_argument("--seed", type=int, default=0, help="random seed of data, weights and checks (default 0)")
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="torch CPU threads (default 1: these small models run best on one thread per process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when not on a terminal)")

    def run(args: argparse.Namespace) -> int:
        from equiscale.demo import run_demo

        names = None if args.sections is None else [s.strip() for s in args.sections.split(",") if s.strip()]
        result = run_demo(out=args.out, quick=args.quick, seed=args.seed, sections=names, threads=args.threads,
                          progress=False if args.quiet else None, stop_on_error=args.debug)
        return 1 if result.failed else 0

    parser.set_defaults(run=run)


def _add_check(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="measure the equivariance error of trained models",
        description="Loads each checkpoint (a run directory, or best.pt/last.pt), recognises from its content "
        "whether it is a fluid surrogate (`equiscale train fluid`) or an interatomic potential (`equiscale train "
        "potential`), and prints the relative equivariance error max|f(g.x) - g.f(x)| / max|f(x)| at random group "
        "elements, with the model in float64 and in float32. Fluid models: one step and a rollout on random "
        "smooth vorticity, under the 90-degree rotations (and, for D(4), reflections) of the model's group. "
        "Potentials: energy, forces and stress of a rattled periodic crystal under random rotations, reflections, "
        "translations and permutations of the atoms.")
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="run directory or .pt checkpoint")
    parser.add_argument("--samples", type=_positive_int, default=4, help="random group elements per check (default 4)")
    parser.add_argument("--rollout", type=int, default=10, help="fluid models: also check a rollout of this many "
                        "steps (default 10; 0: one step only)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the inputs and group elements (default 0)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="exit with status 1 if any float64 error exceeds this (default: only report)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's choice)")

    def run(args: argparse.Namespace) -> int:
        import torch

        from equiscale.check import checkpoint_checks, format_table, measure_checks

        if args.threads is not None:
            torch.set_num_threads(args.threads)
        worst = 0.0
        for path in args.checkpoints:
            description, checks = checkpoint_checks(path, rollout=args.rollout, samples=args.samples, seed=args.seed)
            print(description)
            results = measure_checks(checks, seed=args.seed)
            print(format_table(results) + "\n")
            worst = max([worst] + [r.float64 for r in results])
        if args.tolerance is not None and worst > args.tolerance:
            print(f"equiscale check: float64 error {worst:.1e} exceeds the tolerance {args.tolerance:.1e}", file=sys.stderr)
            return 1
        return 0

    parser.set_defaults(run=run)


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under ``parser`` that runs a command (those without sub-commands of their own)."""
    children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not children:
        return [parser]
    return [leaf for action in children for child in dict.fromkeys(action.choices.values()) for leaf in _leaf_parsers(child)]


def build_parser() -> argparse.ArgumentParser:
    """The ``equiscale`` argument parser with every command and task registered."""
    parser = Parser(prog="equiscale", description="Symmetry-aware deep learning for science: generate data, train, "
                    "evaluate and check equivariant models, or run the demo of every scale. "
                    "`equiscale COMMAND --help` describes each command.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    verbs = {}
    for verb, help_text in VERBS.items():
        verb_parser = subparsers.add_parser(verb, help=help_text, description=f"{help_text}: choose a task")
        verbs[verb] = verb_parser.add_subparsers(dest="task", metavar="TASK")
        verbs[verb].required = True
    _add_check(subparsers)
    _add_demo(subparsers)
    for module in APPLICATION_COMMANDS:
        importlib.import_module(module).register(verbs)
    for leaf in _leaf_parsers(parser):
        if leaf is not parser:  # accepted after the subcommand too; the top-level default stays False
            leaf.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                              help="show the full traceback on errors")
    return parser


def describe_error(error: BaseException) -> str:
    """A one-line description of an error a user can fix."""
    if isinstance(error, ModuleNotFoundError):
        root = (error.name or "").split(".")[0]
        extra = EXTRAS.get(root)
        hint = f"pip install 'equiscale[{extra}]'" if extra else f"pip install {root}"
        return f"this needs the optional package {root}: {hint}"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    elif isinstance(error, KeyError) and error.args:
        text = f"missing entry {error.args[0]!r}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())  # one line


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ValueError, OSError, KeyError]
    try:
        import yaml

        errors.append(yaml.YAMLError)
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        pass
    return tuple(errors)


def _is_missing_extra(error: BaseException) -> bool:
    return isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in EXTRAS


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    name = " ".join(str(part) for part in ("equiscale", args.command, getattr(args, "task", None)) if part)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - sorted below: user errors get one line, bugs a traceback
        if args.debug or not (isinstance(error, _user_errors()) or _is_missing_extra(error)):
            raise
        print(f"{name}: error: {describe_error(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
