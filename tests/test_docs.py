"""The documentation builds offline with `mkdocs build --strict`, and every code block in it runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["index.html", "concepts/index.html", "cli/index.html", "demo/index.html", "tutorials/continuum/index.html",
         "tutorials/atomistic/index.html", "tutorials/o3/index.html", "tutorials/grids/index.html",
         "api/groups/index.html", "api/o3/index.html", "api/nn/index.html", "api/testing/index.html",
         "api/continuum/index.html", "api/atomistic/index.html", "api/train/index.html", "api/demo/index.html",
         "api/fields/index.html", "api/engine/index.html", "architecture/index.html", "api/quantum/index.html"]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                             "-d", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.mark.xdist_group("docs_site")  # one worker builds the site once
def test_docs_build_strict_with_every_page(site):
    for page in PAGES:
        assert (site / page).is_file(), page


@pytest.mark.xdist_group("docs_site")  # one worker builds the site once
def test_api_reference_is_generated_from_docstrings(site):
    o3 = (site / "api/o3/index.html").read_text()
    assert 'id="equiscale.o3.spherical_harmonics"' in o3 and "Real spherical harmonics" in o3
    atomistic = (site / "api/atomistic/index.html").read_text()
    assert 'id="equiscale.atomistic.model.EquivariantPotential"' in atomistic
    assert 'id="equiscale.check.checkpoint_checks"' in (site / "api/testing/index.html").read_text()


@pytest.mark.xdist_group("docs_site")  # one worker builds the site once
def test_tutorials_include_the_tested_examples(site):
    for page, code in (("continuum", "generate_fluid"), ("atomistic", "emt_frames"), ("o3", "wigner_3j")):
        html = (site / f"tutorials/{page}/index.html").read_text()
        assert code in html and "--8&lt;--" not in html and "[start:" not in html, page


def test_readme_snippets_are_short_and_run(tmp_path, monkeypatch):
    blocks = _python_blocks(ROOT / "README.md")
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        assert len(block.strip().splitlines()) <= 15, block
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("page", ["concepts.md", "tutorials/grids.md", "demo.md"])
def test_code_in_the_docs_runs(page, tmp_path, monkeypatch):
    blocks = [b for b in _python_blocks(ROOT / "docs" / page) if "--8<--" not in b]
    assert blocks, f"{page} has no code of its own"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs"}
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)


def test_docs_extra_and_make_target_exist():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^docs = \[.*mkdocs.*mkdocstrings", pyproject, flags=re.M)
    assert re.search(r'^test = \["equiscale\[atoms,plot,docs[],]', pyproject, flags=re.M)  # `make test` installs it
    makefile = (ROOT / "Makefile").read_text()
    assert "$(VENV)/.docs" in makefile and "mkdocs build --strict" in makefile
    assert "site/" in (ROOT / ".gitignore").read_text().split()
    assert os.path.isfile(ROOT / "mkdocs.yml")
