"""The files of a committee run directory (light: no torch, imported by :mod:`equiscale.settings`).

A run trained with ``--ensemble N`` is a directory holding ``committee.json`` and one ordinary run
directory per member, ``member-0/`` ... ``member-{N-1}/``, each written by the application's own
train command with the seed ``seed + K``. ``committee.json`` holds::

    {"format": 1, "kind": "potential", "ensemble": 3, "members": ["member-0", ...],
     "seeds": [0, 1, 2], "settings": {...the command's settings, ensemble included...},
     "complete": true, "statuses": [0, 0, 0]}
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["COMMITTEE_FILE", "member_name", "is_committee", "read_committee", "write_committee", "committee_settings"]

COMMITTEE_FILE = "committee.json"
FORMAT = 1


def member_name(index: int) -> str:
    """The folder of member ``index`` inside the committee's run directory (``member-K``)."""
    return f"member-{index}"


def is_committee(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run directory written with ``--ensemble`` (it holds ``committee.json``)."""
    return (Path(path) / COMMITTEE_FILE).is_file()


def read_committee(path: str | os.PathLike) -> dict[str, Any]:
    """The contents of ``path/committee.json``.

    Raises:
        FileNotFoundError: ``path`` is not a committee run directory.
        ValueError: the file is not valid JSON or not a committee description.
    """
    file = Path(path) / COMMITTEE_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a committee run directory (no {COMMITTEE_FILE}; train with --ensemble N)")
    try:
        data = json.loads(file.read_text())
    except ValueError as error:
        raise ValueError(f"{file} is not valid JSON: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("members"), list) or not data["members"]:
        raise ValueError(f"{file} does not describe a committee (no list of members)")
    return data


def write_committee(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` (with the format number) to ``path/committee.json`` atomically; return the file."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / COMMITTEE_FILE
    partial = folder / f".{COMMITTEE_FILE}.{os.getpid()}.tmp"
    partial.write_text(json.dumps({"format": FORMAT, **data}, indent=1))
    os.replace(partial, file)
    return file


def committee_settings(out: str | os.PathLike | None, kind: str | None = None) -> dict[str, Any] | None:
    """The saved settings of the committee in ``out`` (None when ``out`` holds no committee).

    Raises:
        ValueError: the committee was trained by a command of another checkpoint ``kind``.
    """
    if not out or not is_committee(out):
        return None
    data = read_committee(out)
    if kind is not None and data.get("kind") not in (None, kind):
        raise ValueError(f"{out} holds a committee of {data.get('kind')!r} models, not {kind!r} ones")
    return {"ensemble": len(data["members"]), **dict(data.get("settings") or {})}
