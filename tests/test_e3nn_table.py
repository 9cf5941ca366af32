"""docs/e3nn.md maps every public name of e3nn 0.6's o3, nn, io and math, and tells the truth.

Every name in the ``__all__`` of ``e3nn.o3``, ``e3nn.nn``, ``e3nn.io`` and ``e3nn.math`` has exactly
one row; no row names an e3nn name that does not exist; every row that promises an equiscale name
imports it from the place stated; and the page's code runs.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "e3nn.md"
MODULES = ("o3", "nn", "io", "math")
ROW = re.compile(r"^\| `e3nn\.(o3|nn|io|math)\.(\w+)` \| (?:`(equiscale(?:\.\w+)+)`|(not provided)) \|(.*)\|\s*$")

e3nn = pytest.importorskip("e3nn")


def _rows() -> list[tuple[str, str, str | None, str]]:
    rows = []
    for line in PAGE.read_text().splitlines():
        if line.startswith("| `e3nn."):
            match = ROW.match(line)
            assert match, f"docs/e3nn.md: a row not in the form '| `e3nn.MOD.NAME` | `equiscale.X.NAME` or not provided | note |': {line}"
            module, name, ours, missing, note = match.groups()
            rows.append((module, name, ours, note.strip()))
    return rows


def _e3nn_names() -> set[tuple[str, str]]:
    return {(module, name) for module in MODULES for name in importlib.import_module(f"e3nn.{module}").__all__}


def test_every_public_e3nn_name_has_exactly_one_row():
    listed = [(module, name) for module, name, _, _ in _rows()]
    duplicates = sorted({entry for entry in listed if listed.count(entry) > 1})
    assert not duplicates, f"listed twice: {duplicates}"
    missing = sorted(_e3nn_names() - set(listed))
    assert not missing, "docs/e3nn.md lacks: " + ", ".join(f"e3nn.{m}.{n}" for m, n in missing)
    unknown = sorted(set(listed) - _e3nn_names())
    assert not unknown, "docs/e3nn.md lists names e3nn 0.6 does not export: " + ", ".join(f"e3nn.{m}.{n}" for m, n in unknown)


@pytest.mark.parametrize("row", [r for r in _rows() if r[2]], ids=lambda r: f"{r[0]}.{r[1]}")
def test_each_promised_name_imports_from_the_stated_place(row):
    module, name, ours, _ = row
    where, attribute = ours.rsplit(".", 1)
    home = importlib.import_module(where)
    assert hasattr(home, attribute), f"docs/e3nn.md promises {ours}, but {where} has no {attribute}"
    assert attribute in getattr(home, "__all__", [attribute]), f"{ours} exists but is not in {where}.__all__"
    theirs = importlib.import_module(f"e3nn.{module}.{name}") if name == "irrep" else getattr(importlib.import_module(f"e3nn.{module}"), name)
    ours_obj = getattr(home, attribute)
    assert isinstance(ours_obj, type) == isinstance(theirs, type), f"{ours} and e3nn.{module}.{name} are not the same kind"


def test_names_we_do_not_provide_say_what_to_use_instead():
    for module, name, ours, note in _rows():
        if ours is None:
            assert note, f"e3nn.{module}.{name}: 'not provided' needs a note saying what to use instead"


def test_the_page_is_in_the_docs_navigation_and_its_code_runs():
    assert "e3nn.md" in (PAGE.parents[1] / "mkdocs.yml").read_text()
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert blocks
    namespace: dict = {"__name__": "docs"}
    for block in blocks:
        exec(compile(block, "docs/e3nn.md", "exec"), namespace)
