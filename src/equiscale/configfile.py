"""YAML configuration files of the command line: read them, check them, merge them with options.

A configuration file is a YAML mapping of setting names to values, e.g. for ``equiscale train fluid``::

    data: fluid.npz
    model: gcnn
    width: 8
    max_time: 300

Precedence, lowest first: the defaults of the settings dataclass, the file, the options given on
the command line. Every problem is reported as a ``ValueError`` (``FileNotFoundError`` for a
missing file) whose message is one line naming the file and the setting.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

__all__ = ["read_yaml_mapping", "check_setting_types", "merge_settings"]


def read_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping stored in the YAML file ``path`` (an empty file gives ``{}``).

    Raises:
        FileNotFoundError: ``path`` does not exist (or is not a file).
        ValueError: the file is not valid YAML, or holds something other than a mapping with
            string keys; the message gives the line and column of a syntax error.
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


_SIMPLE = {"int": int, "float": float, "str": str, "bool": bool}


def _accepts(annotation: str, value: Any) -> bool:
    """Whether ``value`` fits a simple annotation such as ``"int"``, ``"float | None"`` or ``"str"``.

    Annotations that are not built from int, float, str, bool and None are not checked.
    """
    parts = [p.strip() for p in str(annotation).replace("Optional[", "").rstrip("]").split("|")]
    if not all(p in _SIMPLE or p == "None" for p in parts):
        return True
    if value is None:
        return "None" in parts
    for part in parts:
        kind = _SIMPLE.get(part)
        if kind is bool and isinstance(value, bool):
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind is str and isinstance(value, str):
            return True
    return False


def check_setting_types(settings_class: type, values: Mapping[str, Any], source: str,
                        extra: Mapping[str, str] | None = None) -> None:
    """Raise ValueError naming ``source`` if a name in ``values`` is unknown or has the wrong type.

    ``settings_class`` is a dataclass whose fields are the known settings; ``extra`` adds names
    with their annotation (e.g. ``{"data": "str"}``) that are not fields of it.
    """
    fields = {f.name: f.type for f in dataclasses.fields(settings_class)}
    fields.update(extra or {})
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    for name, value in values.items():
        if not _accepts(fields[name], value):
            raise ValueError(f"{source}: setting '{name}' must be {fields[name]}, got {value!r}")


def merge_settings(settings_class: type, config: str | os.PathLike | None, options: Mapping[str, Any],
                   extra: Mapping[str, str] | None = None, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults < ``base`` < the YAML file ``config`` < ``options`` (those that are not None).

    Returns the merged values of the fields of ``settings_class`` and of ``extra`` that are set
    somewhere; the caller builds the dataclass from them. Unknown names and wrong types in the
    file are refused with a ValueError naming the file.
    """
    values: dict[str, Any] = dict(base or {})
    if config is not None:
        loaded = read_yaml_mapping(config)
        check_setting_types(settings_class, loaded, f"config file {os.fspath(config)}", extra)
        values.update(loaded)
    values.update({k: v for k, v in options.items() if v is not None})
    return values

