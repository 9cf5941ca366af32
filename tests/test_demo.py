"""`equiscale demo`: the quick demo end to end, its report and figures, interrupts, failures, sections."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from equiscale import cli
from equiscale.demo import DemoContext, SectionResult, SummaryRow, run_demo
from equiscale.demo.report import Report, summary_text
from equiscale.demo.sections import SECTION_NAMES, SECTIONS, load_section

pytest.importorskip("matplotlib")
pytest.importorskip("ase")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """The quick demo, run once through the command line: (output folder, CPU seconds, exit status).

    CPU time of this process, not wall time: the demo runs on one thread, so on an idle machine the
    two agree, and on a shared one the budget still measures the demo rather than its neighbours.
    """
    out = tmp_path_factory.mktemp("demo")
    start = time.process_time()
    status = cli.main(["demo", "--quick", "--out", str(out), "--quiet"])
    return out, time.process_time() - start, status


def _metrics(out: Path) -> dict[str, dict]:
    summary = json.loads((out / "summary.json").read_text())
    return {s["title"].split(":")[0]: s for s in summary["sections"]}


@pytest.mark.xdist_group("quick_demo")  # one worker runs the demo once
def test_quick_demo_runs_every_section_within_budget(quick_demo, capsys):
    out, seconds, status = quick_demo
    assert status == 0
    assert seconds < 120, f"the quick demo took {seconds:.0f} CPU-s (budget 2 minutes)"
    report = (out / "report.md").read_text()
    for title in ("## Summary", "## Continuum", "## Atomistic", "## Uncertainty", "## Steerable", "## Quantum",
                  "## Symmetry check", "### Trained models"):
        assert title in report
    sections = _metrics(out)
    assert set(sections) == {"Continuum", "Atomistic", "Uncertainty", "Steerable", "Quantum", "Symmetry check"}
    assert not any(s["failed"] for s in sections.values())


@pytest.mark.xdist_group("quick_demo")  # one worker runs the demo once
def test_report_links_only_existing_png_figures(quick_demo):
    out, _, _ = quick_demo
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", (out / "report.md").read_text())
    assert len(links) >= 8  # rollout error, three rollouts, parity, energy conservation, field slice, angles
    for link in links:
        assert (out / link).read_bytes()[:8] == PNG, link
    figures = [f for s in _metrics(out).values() for f in s["figures"]]
    assert sorted(figures) == sorted(links)
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


@pytest.mark.xdist_group("quick_demo")  # one worker runs the demo once
def test_quick_demo_measures_what_the_scales_promise(quick_demo):
    out, _, _ = quick_demo
    sections = _metrics(out)
    fluid = sections["Continuum"]["metrics"]
    assert fluid["gcnn_equivariance_1"] < 1e-5  # exact, float32 rounding
    assert fluid["cnn_equivariance_1"] > 1e-3 and fluid["cnn-aug_equivariance_1"] > 1e-3  # learned at best
    assert all(fluid[f"{m}_steps"] > 0 for m in ("gcnn", "cnn", "cnn-aug"))
    atoms = sections["Atomistic"]["metrics"]
    assert 0 < atoms["force_mae"] < 1000 and atoms["structures"] == 3
    assert abs(atoms["md_drift"]) < 50 and atoms["md_duration"] > 0  # meV/atom/ps: no blow-up
    fields = sections["Steerable"]["metrics"]  # row 0: the SO(3)-steerable CNN, then the plain CNNs
    assert fields["efield_0_equivariance"] < 1e-5 < fields["efield_1_equivariance"]  # the 24 cube rotations
    assert 0 < fields["efield_0_error"] < 2
    quantum = sections["Quantum"]["metrics"]
    assert 0 < quantum["equivariant_h_mae_uha"] < quantum["baseline_h_mae_uha"]  # symmetry helps with few frames
    assert quantum["equivariant_scf_iterations_predicted"] > 0 and quantum["equivariant_scf_iterations_minao"] > 0
    checks = sections["Symmetry check"]["metrics"]
    # rebuilt from its checkpoint in float64 (its kernel basis sampled in float64), as `equiscale check` does
    assert checks["field SO(3)-steerable CNN [float64]"] < 1e-12
    assert checks["field CNN, same parameters [float64]"] > 1e-3
    core = {k: v for k, v in checks.items() if not k.startswith(("fluid", "Cu potential", "field", "hamiltonian"))}
    assert len(core) == 14 and max(v for k, v in core.items() if "float64" in k) < 1e-12
    assert checks["fluid C(4) G-CNN: one step [float64]"] < 1e-12
    assert checks["fluid CNN: one step [float64]"] > 1e-3
    h = "hamiltonian {}: hamiltonian (rotations, reflections) [float64]"
    assert checks[h.format("equivariant model")] < 1e-10 < 1e-4 < checks[h.format("MLP + O(3) augmentation")]
    for quantity in ("energy (invariant)", "forces (vectors)", "stress (rank-2 tensor)"):
        assert checks[f"Cu potential: {quantity} [float64]"] < 1e-10
        assert checks[f"Cu potential: {quantity} [float32]"] < 1e-4


@pytest.mark.xdist_group("quick_demo")  # one worker runs the demo once
def test_trained_checkpoints_are_left_for_equiscale_check(quick_demo, capsys):
    out, _, _ = quick_demo
    assert cli.main(["check", str(out / "continuum" / "runs" / "gcnn"), str(out / "atomistic" / "run"),
                     "--rollout", "0", "--tolerance", "1e-10"]) == 0
    printed = capsys.readouterr().out
    assert "fluid surrogate 'gcnn'" in printed and "interatomic potential (Cu" in printed


# --- the runner, with stand-in sections ---------------------------------------------------------
def section_ok(ctx: DemoContext) -> SectionResult:
    return SectionResult("OK section", "all fine", summary=[SummaryRow("ok", "thing", "42")], metrics={"answer": 42.0})


def section_interrupted(ctx: DemoContext) -> SectionResult:
    raise KeyboardInterrupt


def section_broken(ctx: DemoContext) -> SectionResult:
    raise ValueError("the section broke\non two lines")


@pytest.fixture
def stand_ins(monkeypatch):
    for name in ("ok", "interrupted", "broken"):
        monkeypatch.setitem(SECTIONS, name, f"{__name__}:section_{name}")


def test_ctrl_c_keeps_the_finished_sections(tmp_path, stand_ins, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--sections", "ok,interrupted,ok"]) == 130
    report = (tmp_path / "report.md").read_text()
    assert "## OK section" in report and report.count("## OK section") == 1
    assert "Interrupted during the interrupted section" in report
    assert json.loads((tmp_path / "summary.json").read_text())["sections"][0]["metrics"] == {"answer": 42.0}
    captured = capsys.readouterr()
    assert "equiscale demo: interrupted" in captured.err
    assert "42" in captured.out  # the summary of the finished sections is printed


def test_a_failing_section_is_recorded_and_the_others_run(tmp_path, stand_ins, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--sections", "broken,ok"]) == 1
    report = (tmp_path / "report.md").read_text()
    assert "## broken" in report and "the section broke on two lines" in report and "## OK section" in report
    assert "ValueError: the section broke" in (tmp_path / "broken-error.txt").read_text()
    assert "section broken failed" in capsys.readouterr().err
    with pytest.raises(ValueError, match="the section broke"):  # --debug: the traceback instead
        cli.main(["--debug", "demo", "--out", str(tmp_path / "again"), "--sections", "broken"])


def test_unknown_section_is_a_one_line_error(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--sections", "continuum,nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown demo section 'nope'" in err
    with pytest.raises(ValueError):
        load_section("nope")


def test_sections_are_registered_in_order_and_importable():
    assert SECTION_NAMES[-1] == "symmetry"  # it measures what the others trained
    assert {"continuum", "atomistic", "uncertainty"} <= set(SECTION_NAMES)
    for name in SECTION_NAMES:
        assert callable(load_section(name))


def test_an_application_may_declare_several_sections():
    from equiscale.applications import Application, DemoSection, discover
    from equiscale.demo.sections import available_sections

    two = Application("two", "two sections", demo=(DemoSection("late", "m:late", order=50),
                                                   DemoSection("early", "m:early", order=5)))
    one = Application("one", "one section", demo=DemoSection("middle", "m:middle", order=10))
    assert list(available_sections([two, one])) == ["early", "middle", "late", "symmetry"]
    clash = Application("three", "a clash", demo=(DemoSection("middle", "m:other"),))
    with pytest.raises(ValueError, match="demo section 'middle' is declared by both"):
        discover([one, clash])


def test_run_demo_accepts_section_functions_and_writes_atomically(tmp_path, capsys):
    result = run_demo(out=tmp_path, sections=[section_ok], progress=False)
    assert [s.title for s in result.sections] == ["OK section"] and not result.failed
    assert result.summary == [SummaryRow("ok", "thing", "42")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "summary.json"]
    assert "1 section(s) in" in result.report.read_text()


def test_report_and_summary_table(tmp_path):
    report = Report(tmp_path / "report.md", "preamble")
    report.write()
    assert "## Summary" not in report.path.read_text()
    report.add(SectionResult("A", "text", summary=[SummaryRow("s", "item", "result 1"), SummaryRow("s", "longer item", "2")]))
    text = report.path.read_text()
    assert "| s | item | result 1 |" in text and "## A" in text
    table = summary_text(report.rows).splitlines()
    assert table[0].startswith("section") and table[0].index("result") == table[2].index("result 1")
    assert table[2].index("result 1") == table[3].index("2")  # aligned columns


def test_context_helpers(tmp_path):
    ctx = DemoContext(out=tmp_path)
    folder = ctx.folder("part")
    assert folder.is_dir()
    assert ctx.image(folder / "fig.png", "a figure") == "![a figure](part/fig.png)"
    ctx.add_checks(["a", "b"])
    assert ctx.checks == ["a", "b"]
