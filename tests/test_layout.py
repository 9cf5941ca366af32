"""The package's layering and conventions, checked on its source (docs/architecture.md).

- the core and the engine import no application (nor name one in a "module:function" string);
  no application imports the command line;
- one docstring style (Google: ``Args:``/``Returns:``/``Raises:``), the one the API pages render;
- no module past ~400 lines without the reason written near its top.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from equiscale.applications import discover

SRC = Path(__file__).resolve().parents[1] / "src" / "equiscale"
MODULES = sorted(SRC.rglob("*.py"))
APPLICATIONS = sorted({a.commands[0].run.split(".")[1] for a in discover() if a.commands})
CORE = ("groups", "o3", "kernels", "nn", "train", "_kernels", "demo", "testing.py", "settings.py",
        "applications.py", "check.py", "cli.py", "plotting.py")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # from equiscale import cli
    return names


def _code_strings(path: Path) -> list[str]:
    """String constants that are not docstrings (where "module:function" references would be)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_installed_applications_are_found():
    assert {"atomistic", "continuum", "fields"} <= set(APPLICATIONS)


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(SRC).parts[0] in CORE],
                         ids=lambda p: str(p.relative_to(SRC)))
def test_the_core_names_no_application(path):
    used = _imports(path) | {s for s in _code_strings(path) if s.startswith("equiscale.")}
    for application in APPLICATIONS:
        named = [n for n in used if n == f"equiscale.{application}" or n.startswith(f"equiscale.{application}.")
                 or n.startswith(f"equiscale.{application}:")]
        assert not named, f"{path.relative_to(SRC)} uses {named}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(SRC).parts[0] in APPLICATIONS],
                         ids=lambda p: str(p.relative_to(SRC)))
def test_applications_do_not_import_the_command_line(path):
    assert not any(name == "equiscale.cli" or name.startswith("equiscale.cli.") for name in _imports(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_one_docstring_style(path):
    numpy_style = re.search(r"\n\s+(Parameters|Returns|Raises|Examples|Attributes)\n\s+-{3,}\n", path.read_text())
    assert numpy_style is None, f"{path.relative_to(SRC)}: numpy-style '{numpy_style.group(1)}' section; use Google style"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_long_modules_say_why(path):
    lines = path.read_text().splitlines()
    if len(lines) > 420:
        head = "\n".join(lines[:40])
        assert "past ~400 lines" in head, f"{path.relative_to(SRC)} has {len(lines)} lines and no reason at its top"
