"""The ``equiscale`` command: ``data``, ``train``, ``evaluate``, ``check`` and ``demo``.

The tasks under ``data``, ``train`` and ``evaluate`` come from the installed applications
(:mod:`equiscale.applications`): each declares its commands with one settings dataclass each,
from which the options, the ``--config`` file and the validation are derived
(:mod:`equiscale.settings`). ``check`` and ``demo`` belong to the core and are declared the same way.
This module names no application.

Errors a user can fix (bad options, missing or unreadable files, bad YAML, a checkpoint of the
wrong kind, a missing optional dependency) print one line, ``equiscale <command>: error: ...``, and
exit with status 2; ``--debug`` (before or after the subcommand) shows the full traceback instead.
Ctrl-C exits with status 130; a closed standard output (``equiscale ... | head``) ends quietly.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Sequence

from equiscale.applications import VERBS, Application, Command, discover, load_function
from equiscale.settings import Settings, TrainingSettings, add_arguments, merge, positive, resolve, setting

__all__ = ["main", "build_parser", "describe_error", "CheckSettings", "DemoSettings"]

# The core's optional dependencies and the extra that installs each (named in the error when one is
# missing); applications declare theirs (Application.extras).
CORE_EXTRAS = {"matplotlib": "plot", "mkdocs": "docs", "mkdocstrings": "docs"}


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``PROG: error: MESSAGE (see PROG --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the usage error as one line and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# --- the core's own commands ------------------------------------------------------------------------------
@dataclass
class CheckSettings(Settings):
    """Options of ``equiscale check``."""

    checkpoints: list[str] = setting(None, help="run directory (a committee: each member), or .pt checkpoint",
                                     positional=True, required=True, metavar="CHECKPOINT")
    samples: int = setting(4, help="random group elements per check", check=positive)
    rollout: int = setting(10, help="models that step in time: also check a rollout of this many steps "
                           "(0: one step only)", check=lambda v: None if v >= 0 else "must be >= 0")
    seed: int = setting(0, help="random seed of the inputs and group elements")
    tolerance: float | None = setting(None, help="exit with status 1 if any float64 error exceeds this",
                                      check=positive, default_text="only report")
    threads: int | None = setting(None, help="torch CPU threads", check=positive, default_text="torch's choice")


@dataclass
class DemoSettings(Settings):
    """Options of ``equiscale demo``."""

    quick: bool = setting(False, help="tiny sizes and budgets, the same code paths (about 1 minute)")
    out: str | None = setting(None, help="output directory", metavar="DIR", default_text="runs/demo-YYYYmmdd-HHMMSS")
    sections: str | None = setting(None, help="comma-separated sections to run, in order", metavar="NAMES",
                                   default_text="all")
    seed: int = setting(0, help="random seed of data, weights and checks")
    threads: int = setting(1, help="torch CPU threads (these small models run best on one thread per process)",
                           check=positive)
    quiet: bool = setting(False, help="no progress bars (they are off anyway when not on a terminal)")


def run_check(settings: CheckSettings, applications: Sequence[Application] | None = None) -> int:
    """``equiscale check``: print the equivariance table of each checkpoint (kinds looked up in ``applications``)."""
    from equiscale.check import CheckOptions, checkpoint_checks, expand_committees, format_table, measure_checks

    worst = 0.0
    options = CheckOptions(rollout=settings.rollout, samples=settings.samples, seed=settings.seed)
    for path in expand_committees(settings.checkpoints):
        description, checks = checkpoint_checks(path, options, applications)
        print(description)
        results = measure_checks(checks, seed=settings.seed)
        print(format_table(results) + "\n", flush=True)
        worst = max([worst] + [r.float64 for r in results])
    if settings.tolerance is not None and worst > settings.tolerance:
        print(f"equiscale check: float64 error {worst:.1e} exceeds the tolerance {settings.tolerance:.1e}",
              file=sys.stderr)
        return 1
    return 0


def run_demo_command(settings: DemoSettings, debug: bool = False,
                     applications: Sequence[Application] | None = None) -> int:
    """``equiscale demo``: run the sections and write the report (``debug``: stop at the first failing section)."""
    from equiscale.demo import run_demo

    names = None if settings.sections is None else [s.strip() for s in settings.sections.split(",") if s.strip()]
    result = run_demo(out=settings.out, quick=settings.quick, seed=settings.seed, sections=names,
                      threads=settings.threads, progress=False if settings.quiet else None,
                      stop_on_error=debug, applications=applications)
    return 1 if result.failed else 0


def _core_commands(applications: Sequence[Application]) -> dict[str, Command]:
    from equiscale.demo.sections import section_names

    names = ", ".join(section_names(applications))
    check = Command("", "check", CheckSettings, run=f"{__name__}:run_check",
                    help="measure the equivariance error of trained models",
                    description="Loads each checkpoint (a run directory, or best.pt/last.pt), finds the application that "
                    "wrote it from the kind in its header, and prints the relative equivariance error "
                    "max|f(g.x) - g.f(x)| / max|f(x)| at random group elements, with the model in float64 and in "
                    "float32, under the group the model is built for (e.g. 90-degree rotations of a fluid field; "
                    "rotations, reflections, translations and permutations of atoms).")
    demo = Command("", "demo", DemoSettings, run=f"{__name__}:run_demo_command",
                   help="run every scale end to end and write a report with figures",
                   description="Runs the demo section of every installed application in turn "
                   f"({names}), then the symmetry check (the equivariance of the symmetry core and of every model "
                   "trained by the sections, in float64 and float32). Writes DIR/report.md after each section, with "
                   "PNG figures beside it, and prints a summary table. Ctrl-C keeps the finished sections. The full "
                   "demo takes about 13-20 minutes on 2 CPU cores, --quick about a minute and a half.")
    return {"check": check, "demo": demo}


# --- building the parser ------------------------------------------------------------------------------------
class EpilogAsWritten(argparse.HelpFormatter):
    """Wraps descriptions to the terminal, but prints multi-line text (an example epilog) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _add_command(subparsers: argparse._SubParsersAction, name: str, command: Command) -> None:
    parser = subparsers.add_parser(name, help=command.help, description=command.description or command.help,
                                   epilog=command.epilog or None, formatter_class=EpilogAsWritten)
    add_arguments(parser, command.settings, config=bool(command.verb))  # --config for every application command
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on errors")
    parser.set_defaults(command_declaration=command)


def build_parser(applications: Sequence[Application] | None = None) -> argparse.ArgumentParser:
    """The ``equiscale`` argument parser with the core commands and every application's tasks."""
    applications = discover() if applications is None else list(applications)
    parser = Parser(prog="equiscale", description="Symmetry-aware deep learning for science: generate data, train, "
                    "evaluate and check equivariant models, or run the demo of every scale. "
                    "`equiscale COMMAND --help` describes each command.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    tasks = {}
    for verb, help_text in VERBS.items():
        verb_parser = subparsers.add_parser(verb, help=help_text, description=f"{help_text}: choose a task")
        tasks[verb] = verb_parser.add_subparsers(dest="task", metavar="TASK")
        tasks[verb].required = True
    for name, command in _core_commands(applications).items():
        _add_command(subparsers, name, command)
    for application in applications:
        for command in application.commands:
            _add_command(tasks[command.verb], command.task, command)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under ``parser`` that runs a command (those without sub-commands of their own)."""
    children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not children:
        return [parser]
    return [leaf for action in children for child in dict.fromkeys(action.choices.values()) for leaf in _leaf_parsers(child)]


# --- running -------------------------------------------------------------------------------------------------
def settings_of(command: Command, args: argparse.Namespace) -> Settings:
    """The command's settings: defaults < the resumed run's saved settings < --config < the options given."""
    given = {k: v for k, v in vars(args).items() if k not in ("command", "task", "debug", "config", "command_declaration")}
    config = getattr(args, "config", None)
    saved = None
    if issubclass(command.settings, TrainingSettings):
        values = merge(command.settings, given, config)
        if values.get("resume"):
            saved = command.settings.saved_settings(values.get("out"))
            command.settings.check_resume(saved, values, values.get("out"))
    return resolve(command.settings, given, config, saved)


def _extras(applications: Sequence[Application] | None) -> dict[str, str]:
    declared = [pair for a in (applications or ()) for pair in a.extras]
    return {**CORE_EXTRAS, **dict(declared)}


def describe_error(error: BaseException, applications: Sequence[Application] | None = None) -> str:
    """A one-line description of an error a user can fix (a missing module names its extra)."""
    if isinstance(error, ModuleNotFoundError):
        root = (error.name or "").split(".")[0]
        extra = _extras(applications).get(root)
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


def _is_missing_extra(error: BaseException, applications: Sequence[Application] | None) -> bool:
    return isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in _extras(applications)


def _quiet_broken_pipe() -> int:
    """Standard output was closed by its reader: point it at /dev/null so the exit flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
        pass
    return 0


def _set_threads(settings: Settings) -> None:
    threads = getattr(settings, "threads", None)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None, applications: Sequence[Application] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status.

    ``applications`` replaces the installed ones (for tests and embedding). A run function may
    take the keyword arguments ``debug`` (``--debug`` was given) and ``applications``.
    """
    given = applications
    applications = discover() if applications is None else list(applications)
    parser = build_parser(applications)
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    name = " ".join(str(part) for part in ("equiscale", args.command, getattr(args, "task", None)) if part)
    command: Command = args.command_declaration
    try:
        settings = settings_of(command, args)
        _set_threads(settings)
        run = load_function(command.run)
        context = {"debug": debug, "applications": given}  # given to run functions that ask for them
        accepted = inspect.signature(run).parameters
        kwargs = {k: v for k, v in context.items() if k in accepted and v is not None}
        if isinstance(settings, TrainingSettings) and settings.ensemble > 1:  # a committee (equiscale.uncertainty)
            from equiscale.uncertainty.committee import train_committee

            status = train_committee(command.run, settings, kwargs)
        else:
            status = run(settings, **kwargs)
        sys.stdout.flush()
        return int(status or 0)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except Exception as error:  # noqa: BLE001 - sorted below: user errors get one line, bugs a traceback
        if debug or not (isinstance(error, _user_errors()) or _is_missing_extra(error, applications)):
            raise
        print(f"{name}: error: {describe_error(error, applications)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
