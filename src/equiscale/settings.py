"""Settings of the commands: one dataclass per command, from which everything else is derived.

A command's settings are a dataclass that inherits :class:`Settings`, each field declared with
:func:`setting`, which carries its help text and its validation::

    @dataclass
    class FluidData(Settings):
        out: str = setting(None, help="output .npz file", required=True, metavar="FILE.npz")
        trajectories: int = setting(32, help="number of trajectories N", check=positive)

From that one declaration, :func:`add_arguments` builds the command-line options (``--trajectories``,
type from the annotation, the default stated in the help), :func:`resolve` merges the defaults, the
saved settings of a resumed run, a YAML ``--config`` file and the options given on the command line
(in that order of precedence), and ``Settings.__post_init__`` validates every value, also when the
dataclass is built in Python. A field added to the dataclass appears everywhere at once.

This module imports no torch: application declarations import it while the command line starts.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

__all__ = ["Settings", "TrainingSettings", "setting", "positive", "non_negative", "fraction", "at_least",
           "add_arguments", "merge", "resolve", "read_yaml_mapping", "describe_default"]

Check = Callable[[Any], "str | None"]


# --- checks: value -> error message or None ---------------------------------------------------------------
def positive(value: Any) -> str | None:
    """A number > 0 (and finite)."""
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return None
    return "must be a positive integer" if isinstance(value, int) else "must be a positive number"


def non_negative(value: Any) -> str | None:
    """A number >= 0 (and finite)."""
    return None if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else "must be >= 0"


def fraction(value: Any) -> str | None:
    """A number in (0, 1]."""
    return None if isinstance(value, (int, float)) and 0 < value <= 1 else "must be in (0, 1]"


def at_least(bound: float) -> Check:
    """A check for numbers >= ``bound``."""
    def check(value: Any) -> str | None:
        return None if isinstance(value, (int, float)) and value >= bound else f"must be >= {bound:g}"

    return check


# --- declaring settings ------------------------------------------------------------------------------------
def setting(default: Any = None, *, help: str, choices: tuple | None = None, check: Check | None = None,
            metavar: str | None = None, required: bool = False, positional: bool = False,
            default_text: str | None = None, resumed: bool = True) -> Any:
    """A dataclass field of a :class:`Settings` class.

    Args:
        default: the default value (mutable defaults such as lists are copied per instance).
        help: one sentence for ``--help``; " (default X)" is appended.
        choices: the allowed values.
        check: ``check(value) -> message | None`` for values that are not None.
        metavar: the name of the value in ``--help``.
        required: None and "" are refused (the message says how to give it).
        positional: a positional argument on the command line (a ``list[str]`` takes one or more).
        default_text: what ``--help`` shows as the default instead of the value; ``{cls.NAME}`` is
            replaced by a class attribute of the settings class (e.g. ``{cls.default_epochs}``).
        resumed: a resumed run takes this value from its saved settings (False for how a run is
            shown or run, such as ``quiet`` or ``threads``, which each invocation states anew).
    """
    metadata = {"help": help, "choices": choices, "check": check, "metavar": metavar, "required": required,
                "positional": positional, "default_text": default_text, "resumed": resumed}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _meta(field: dataclasses.Field) -> dict[str, Any]:
    return dict(field.metadata) if "help" in field.metadata else {"help": field.name, "choices": None, "check": None,
                                                                  "metavar": None, "required": False,
                                                                  "positional": False, "default_text": None,
                                                                  "resumed": True}


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


@dataclass
class Settings:
    """Base of every command's settings: validates each field on construction.

    Raises:
        ValueError: one line naming the setting, e.g. ``setting 'lr' must be positive, got -1``.
    """

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for field in dataclasses.fields(self):
            meta = _meta(field)
            value = getattr(self, field.name)
            if value is None or value == "":
                if meta["required"]:
                    raise ValueError(f"no {field.name}: pass {_option(field.name) if not meta['positional'] else field.name.upper()} "
                                     f"(or set '{field.name}:' in the --config file)")
                if value is None:
                    continue
            error = _type_error(hints.get(field.name), value)
            if error is None and meta["choices"] is not None and value not in meta["choices"]:
                error = f"must be one of {', '.join(map(str, meta['choices']))}"
            if error is None and meta["check"] is not None:
                error = meta["check"](value)
            if error is not None:
                raise ValueError(f"setting '{field.name}' {error}, got {value!r}")

    def as_dict(self) -> dict[str, Any]:
        """The values by field name (what a checkpoint stores)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some values changed (validated again)."""
        return dataclasses.replace(self, **changes)


# --- types ---------------------------------------------------------------------------------------------------
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # each base's annotations in its own module's namespace


def _parts(annotation: Any) -> tuple[list[Any], bool]:
    """The non-None types of an annotation and whether None is allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return [a for a in args if a is not type(None)], type(None) in args
    return [annotation], False


def _base_type(annotation: Any) -> Any:
    kinds, _ = _parts(annotation)
    return kinds[0] if len(kinds) == 1 else None


def _fits(kind: Any, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind) or (Any,)
        return isinstance(value, list) and all(item is Any or _fits(item, v) for v in value)
    return True  # annotations outside this vocabulary are not checked


def _type_error(annotation: Any, value: Any) -> str | None:
    if annotation is None:
        return None
    kinds, _ = _parts(annotation)
    return None if any(_fits(k, value) for k in kinds) else f"must be {_type_name(annotation)}"


def _type_name(annotation: Any) -> str:
    kinds, optional = _parts(annotation)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text"}
    text = " or ".join(names.get(k, "a list" if typing.get_origin(k) is list else getattr(k, "__name__", str(k)))
                       for k in kinds)
    return text + (" (or null)" if optional else "")


def _coerce(kind: Any, name: str, check: Check | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` for int/float/str options: converts, then applies the field's check."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {_type_name(kind)}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        error = check(value) if check is not None else None
        if error is not None:
            raise argparse.ArgumentTypeError(f"{error}, got {text}")
        return value

    return convert


def describe_default(field: dataclasses.Field) -> str:
    """The default as ``--help`` states it."""
    meta = _meta(field)
    if meta["default_text"] is not None:
        return meta["default_text"]
    value = _default(field)
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- the command line -----------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, settings_class: type[Settings], config: bool = True) -> None:
    """Add one option (or positional argument) per field of ``settings_class``, and ``--config``.

    Every option defaults to ``argparse.SUPPRESS``: the namespace holds only what was given, and
    :func:`resolve` fills in the rest.
    """
    hints = _type_hints(settings_class)
    for field in dataclasses.fields(settings_class):
        meta = _meta(field)
        annotation = hints.get(field.name)
        kind = _base_type(annotation)
        help_text = f"{meta['help']} (default {describe_default(field).format(cls=settings_class)})"
        if meta["required"] and not meta["positional"]:
            help_text = f"{meta['help']} (required here or in --config)"
        help_text = help_text.replace("%", "%%")
        if meta["positional"]:
            many = typing.get_origin(kind) is list
            parser.add_argument(field.name, nargs="+" if many else None, metavar=meta["metavar"] or field.name.upper(),
                                help=meta["help"].replace("%", "%%"))
            continue
        if kind is bool:
            default = _default(field)
            flag = _option(field.name) if not default else "--no-" + field.name.replace("_", "-")
            parser.add_argument(flag, dest=field.name, action="store_const", const=not default,
                                default=argparse.SUPPRESS, help=help_text)
            continue
        if typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind) or (str,)
            parser.add_argument(_option(field.name), dest=field.name, nargs="+", type=_coerce(item, field.name, meta["check"]),
                                default=argparse.SUPPRESS, metavar=meta["metavar"], help=help_text)
            continue
        parser.add_argument(_option(field.name), dest=field.name, default=argparse.SUPPRESS,
                            type=_coerce(kind, field.name, meta["check"]) if kind in (int, float, str) else None,
                            choices=meta["choices"], metavar=meta["metavar"], help=help_text)
    if config:
        parser.add_argument("--config", dest="config", default=None, metavar="FILE.yaml",
                            help="YAML file of settings: any option above, with _ or - (e.g. 'max_time: 300'); "
                            "options given here win over the file (default: none)")


def read_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping stored in the YAML file ``path`` (an empty file gives ``{}``).

    Raises:
        FileNotFoundError: ``path`` does not exist (or is not a file).
        ValueError: not valid YAML (with the line and column), or not a mapping of names to values.
    """
    import yaml

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        with open(path) as file:
            loaded = yaml.safe_load(file)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"config file {path} is not valid YAML: {problem}{where}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"config file {path} is not a text file: {error}") from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ValueError(f"config file {path} must hold a mapping of setting names to values "
                         f"(like 'epochs: 10'), got {type(loaded).__name__}")
    return loaded


def _checked(settings_class: type[Settings], values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``values`` with ``-`` in names turned into ``_``; ValueError naming ``source`` for unknown names or types."""
    hints = _type_hints(settings_class)
    known = {f.name for f in dataclasses.fields(settings_class)}
    renamed = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(renamed) - known)
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for name, value in renamed.items():
        error = None if value is None else _type_error(hints.get(name), value)
        if error is not None:
            raise ValueError(f"{source}: setting '{name}' {error}, got {value!r}")
    return renamed


def merge(settings_class: type[Settings], given: Mapping[str, Any] | argparse.Namespace | None = None,
          config: str | os.PathLike | None = None, saved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The values :func:`resolve` builds its settings from, without building them."""
    if isinstance(given, argparse.Namespace):
        given = vars(given)
    known = {f.name for f in dataclasses.fields(settings_class)}
    resumed = {f.name for f in dataclasses.fields(settings_class) if _meta(f)["resumed"]}
    values: dict[str, Any] = {}
    if saved:  # settings since removed, and those each invocation states anew, are dropped
        values.update({k: v for k, v in saved.items() if k in resumed})
    if config is not None:
        values.update(_checked(settings_class, read_yaml_mapping(config), f"config file {os.fspath(config)}"))
    values.update({k: v for k, v in (given or {}).items() if k in known})
    return values


def resolve(settings_class: type[Settings], given: Mapping[str, Any] | argparse.Namespace | None = None,
            config: str | os.PathLike | None = None, saved: Mapping[str, Any] | None = None) -> Settings:
    """The settings of one run, from lowest precedence to highest: the dataclass defaults, ``saved``
    (a resumed run's stored settings), the YAML file ``config``, and ``given`` (the options given on
    the command line; a Namespace from :func:`add_arguments` holds only those).

    Raises:
        ValueError: an unknown name or a wrong type (naming the file or option), or a value that
            fails its check.
    """
    return settings_class(**merge(settings_class, given, config, saved))


# --- what every train command shares -----------------------------------------------------------------------------
@dataclass
class TrainingSettings(Settings):
    """Fields shared by every ``train`` command; an application's train settings subclass it.

    ``epochs`` left unset means "until the time budget" when ``max_time`` is given, else the
    class's ``default_epochs`` (see :attr:`max_epochs`).
    """

    default_epochs: ClassVar[int] = 100
    #: the checkpoint kind this command writes (``--resume`` refuses a run of another kind)
    checkpoint_kind: ClassVar[str | None] = None
    #: settings a resumed run may change; every other saved setting is kept, and a different value is refused
    resume_may_change: ClassVar[tuple[str, ...]] = ("out", "epochs", "max_time", "clock", "patience", "device")

    out: str = setting(None, help="run directory: last.pt, best.pt, history.json", required=True, metavar="DIR")
    epochs: int | None = setting(None, help="maximum epochs", check=positive,
                                 default_text="{cls.default_epochs}; without --epochs, a --max-time budget alone "
                                 "trains until the budget is spent")
    max_time: float | None = setting(None, help="training time budget in seconds (time in training steps, kept "
                                     "across --resume)", check=positive, metavar="SECONDS")
    clock: str = setting("wall", help="measure --max-time as wall-clock time or as this process's CPU time "
                         "(fair on a shared machine)", choices=("wall", "process"))
    ema_decay: float | None = setting(None, help="keep an exponential moving average of the weights with this "
                                      "decay (validation, best.pt and evaluation use it)",
                                      check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)")
    seed: int = setting(0, help="seeds the data split, initial weights and batch order")
    threads: int | None = setting(None, help="torch CPU threads", check=positive, default_text="torch's choice",
                                  resumed=False)
    resume: bool = setting(False, help="continue the run in --out from its last.pt, with its saved settings",
                           resumed=False)
    quiet: bool = setting(False, help="no progress bars (one line per epoch is still printed)", resumed=False)
    ensemble: int = setting(1, help="train a committee of N models (seeds SEED+K) into DIR/member-K/", check=positive)

    @classmethod
    def resume_checkpoint(cls, out: str | os.PathLike) -> str:
        """The checkpoint whose header holds a run's settings: ``out/last.pt`` (a command that keeps
        one folder per model overrides this)."""
        return os.path.join(os.fspath(out), "last.pt")

    @classmethod
    def saved_settings(cls, out: str | os.PathLike | None) -> dict[str, Any]:
        """The settings stored in the header of :meth:`resume_checkpoint`, which ``--resume`` continues with.

        Raises:
            ValueError: no run directory given, or a checkpoint of another kind.
            FileNotFoundError: no checkpoint there.
        """
        from equiscale.train import load_checkpoint  # torch: only when resuming
        from equiscale.uncertainty.files import committee_settings

        if not out:
            raise ValueError("--resume needs the run directory: pass --out DIR")
        last = cls.resume_checkpoint(out)
        committee = committee_settings(out, cls.checkpoint_kind)  # a run trained with --ensemble N
        if committee is None and not os.path.isfile(last):
            raise FileNotFoundError(f"--resume: {last} does not exist")
        return committee or {"ensemble": 1, **dict(load_checkpoint(last, kind=cls.checkpoint_kind)["header"].get("settings") or {})}

    @classmethod
    def check_resume(cls, saved: Mapping[str, Any], requested: Mapping[str, Any], out: Any) -> None:
        """Refuse, in one line naming them, settings of a resumed run that differ from the saved ones.

        ``requested`` are the values given on the command line or in ``--config``. Settings in
        :attr:`resume_may_change`, and those declared ``resumed=False``, may differ.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        changed = [name for name, value in requested.items()
                   if name in fields and name in saved and _meta(fields[name])["resumed"]
                   and name not in cls.resume_may_change and value != saved[name]]
        if changed:
            pairs = ", ".join(f"{name}: {saved[name]!r} -> {requested[name]!r}" for name in changed)
            allowed = ", ".join(n for n in cls.resume_may_change if n in fields)
            raise ValueError(f"cannot resume {out} with different settings: {pairs}; only {allowed} may change "
                             f"on resume (start a new run in another --out to change the others)")

    @property
    def max_epochs(self) -> int | None:
        """The epoch limit: ``epochs``, else None (no limit) under a time budget, else ``default_epochs``."""
        if self.epochs is not None:
            return self.epochs
        return None if self.max_time is not None else self.default_epochs
