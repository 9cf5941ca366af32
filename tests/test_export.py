"""``equiscale export potential|fluid``: files that a plain PyTorch process runs without equiscale.

Each test exports through the command line, then runs the file in a subprocess started with
``python -I`` in which importing ``equiscale`` is blocked (and checked absent from
``sys.modules`` at the end), and compares with the ASE calculator / the eager model. The
``torch.export`` program format runs in the default suite; the AOTInductor packages (a C++
compile of a minute or more) are marked slow.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from equiscale import cli

ATOMS = all(importlib.util.find_spec(n) is not None for n in ("ase", "vesin", "yaml"))
TINY = dict(lmax=1, channels=4, layers=2, cutoff=3.0, num_radial_basis=4, radial_hidden=8, readout_hidden=4)

# run in the plain process: blocks equiscale, loads the file, evaluates, writes outputs.npz
PLAIN_PRELUDE = """
import importlib.abc, json, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "equiscale" or name.startswith("equiscale."):
            raise ImportError("equiscale is off the path in this process")
sys.meta_path.insert(0, Blocked())
import numpy as np, torch
path, fmt, inputs, outputs = sys.argv[1:5]
if fmt == "aoti":
    run = torch._inductor.aoti_load_package(path)
    metadata = run.get_metadata()
else:
    extra = {"metadata.json": ""}
    run = torch.export.load(path, extra_files=extra).module()
    metadata = json.loads(extra["metadata.json"])
data = dict(np.load(inputs))
"""

PLAIN_POTENTIAL = PLAIN_PRELUDE + """
from ase import Atoms
from ase.neighborlist import neighbor_list
dtype = getattr(torch, metadata["dtype"])
atoms = Atoms(numbers=data["numbers"], positions=data["positions"], cell=data["cell"], pbc=data["pbc"])
i, j, S = neighbor_list("ijS", atoms, float(metadata["cutoff"]))
args = (torch.tensor(atoms.positions, dtype=dtype), torch.tensor(atoms.numbers, dtype=torch.int64),
        torch.tensor(np.array(atoms.cell), dtype=dtype), torch.tensor(np.stack([j, i]), dtype=torch.int64),
        torch.tensor(S, dtype=dtype))
energy, forces, stress = run(*args)
np.savez(outputs, energy=energy.detach().double().numpy(), forces=forces.detach().double().numpy(),
         stress=stress.detach().double().numpy())
assert not any(m == "equiscale" or m.startswith("equiscale.") for m in sys.modules), "equiscale was imported"
print("plain process ok")
"""

PLAIN_FLUID = PLAIN_PRELUDE + """
w = torch.tensor(data["w"], dtype=getattr(torch, metadata["dtype"]))
out = run(w)
np.savez(outputs, out=out.detach().double().numpy())
assert not any(m == "equiscale" or m.startswith("equiscale.") for m in sys.modules), "equiscale was imported"
print("plain process ok")
"""


def run_plain(script: str, tmp_path: Path, package: Path, fmt: str, inputs: dict) -> dict:
    """Run ``script`` in ``python -I`` (no user site, no PYTHONPATH, no cwd on the path)."""
    np.savez(tmp_path / "inputs.npz", **inputs)
    (tmp_path / "plain.py").write_text(script)
    result = subprocess.run([sys.executable, "-I", str(tmp_path / "plain.py"), str(package), fmt,
                             str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0 and "plain process ok" in result.stdout, result.stderr[-3000:]
    return dict(np.load(tmp_path / "outputs.npz"))


@pytest.fixture(scope="module")
def potential_run(tmp_path_factory):
    """A tiny potential trained for two epochs on EMT copper (Cu and Al known)."""
    if not ATOMS:
        pytest.skip("needs the atoms extra (ase, vesin) and pyyaml")
    from equiscale.atomistic import emt_frames, write_structures
    from equiscale.atomistic.training import TrainSettings, train_potential

    folder = tmp_path_factory.mktemp("potential")
    write_structures(folder / "cu.xyz", emt_frames("Cu", size=2, frames=4, temperature=800.0, interval=2, seed=3))
    train_potential(TrainSettings(data=str(folder / "cu.xyz"), out=str(folder / "run"), epochs=2, batch_size=2,
                                  lr=1e-2, progress=False, **TINY))
    return folder / "run"


def _structure():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    atoms.rattle(0.08, seed=4)
    atoms.set_cell(atoms.cell * [1.0, 1.02, 0.99], scale_atoms=True)
    return atoms


def _reference(run: Path, atoms, dtype: str) -> dict:
    from equiscale.atomistic.calculator import Calculator

    atoms = atoms.copy()
    atoms.calc = Calculator(run / "best.pt", dtype=dtype)
    s = atoms.get_stress(voigt=False)
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": s}


def _export_potential(run: Path, out: Path, fmt: str, dtype: str) -> None:
    assert cli.main(["export", "potential", str(run), "--out", str(out), "--format", fmt, "--dtype", dtype]) == 0
    assert out.is_file()


def _check_potential(tmp_path, run, package, fmt, dtype, tol):
    atoms = _structure()
    inputs = {"positions": atoms.positions, "numbers": atoms.numbers, "cell": np.array(atoms.cell), "pbc": atoms.pbc}
    got = run_plain(PLAIN_POTENTIAL, tmp_path, package, fmt, inputs)
    expected = _reference(run, atoms, dtype)
    assert abs(float(got["energy"]) - expected["energy"]) <= tol * max(1.0, abs(expected["energy"]))
    np.testing.assert_allclose(got["forces"], expected["forces"], atol=tol, rtol=0)
    np.testing.assert_allclose(got["stress"], expected["stress"], atol=tol, rtol=0)
    assert np.abs(got["forces"]).max() > 1e-4  # a rattled crystal: the comparison is not of zeros
    # another size: the atom and edge counts are dynamic
    bigger = atoms.repeat((1, 1, 2))
    inputs = {"positions": bigger.positions, "numbers": bigger.numbers, "cell": np.array(bigger.cell), "pbc": bigger.pbc}
    got = run_plain(PLAIN_POTENTIAL, tmp_path, package, fmt, inputs)
    np.testing.assert_allclose(got["forces"], _reference(run, bigger, dtype)["forces"], atol=tol, rtol=0)


def test_exported_potential_program_runs_without_equiscale(potential_run, tmp_path):
    package = tmp_path / "model.pt2"
    _export_potential(potential_run, package, "program", "float64")
    from equiscale.deploy import load_metadata

    metadata = load_metadata(package)
    assert metadata["kind"] == "potential" and float(metadata["cutoff"]) == TINY["cutoff"]
    assert json.loads(metadata["elements"]) == [29]
    program = torch.export.load(package)
    assert not any("equiscale" in str(node.target) for node in program.graph.nodes)  # no custom operator
    _check_potential(tmp_path, potential_run, package, "program", "float64", 1e-9)


@pytest.mark.slow
def test_exported_potential_aoti_package_runs_without_equiscale(potential_run, tmp_path):
    package = tmp_path / "model.pt2"
    _export_potential(potential_run, package, "aoti", "float64")
    _check_potential(tmp_path, potential_run, package, "aoti", "float64", 1e-8)


def test_export_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    fake = tmp_path / "best.pt"
    fake.write_text("not a checkpoint")
    assert cli.main(["export", "potential", str(tmp_path), "--out", str(tmp_path / "m.pt2"), "--format", "program"]) != 0
    err = capsys.readouterr().err
    assert "best.pt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt2").exists()


@pytest.fixture(scope="module")
def fluid_runs(tmp_path_factory):
    """Tiny fluid surrogates (one epoch on 12x12 turbulence: the U-Nets need two halvings of 3 points)."""
    from equiscale.continuum.data import generate_fluid
    from equiscale.continuum.models import MODELS

    folder = tmp_path_factory.mktemp("fluid")
    generate_fluid(folder / "train.npz", trajectories=3, steps=4, resolution=R, progress=False)
    return folder, MODELS


R = 12  # the fluid grid
FLUID_OPTIONS = ("--width", "2", "--blocks", "1", "--validation-trajectories", "1", "--quiet", "--batch-size", "8",
                 "--threads", "1", "--epochs", "1")


def _train_fluid(folder: Path, model: str) -> Path:
    out = folder / model
    if not (out / "best.pt").exists():
        extra = ("--modes", "2") if model in ("gfno", "fno") else ("--kernel-size", "3")
        assert cli.main(["train", "fluid", "--data", str(folder / "train.npz"), "--model", model, "--out", str(out),
                         *FLUID_OPTIONS, *extra]) == 0
    return out


def _check_fluid(tmp_path, run: Path, fmt: str) -> None:
    from equiscale.continuum.training import load_run

    package = tmp_path / f"{run.name}.pt2"
    assert cli.main(["export", "fluid", str(run), "--out", str(package), "--format", fmt, "--dtype", "float64"]) == 0
    model, _ = load_run(run)
    w = torch.randn(2, R, R, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = model.double()(w).detach().numpy()
    got = run_plain(PLAIN_FLUID, tmp_path, package, fmt, {"w": w.numpy()})["out"]
    assert got.shape == (2, R, R)
    np.testing.assert_allclose(got, expected, atol=1e-10, rtol=0)
    w1 = torch.randn(1, R, R, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # another batch size
    got = run_plain(PLAIN_FLUID, tmp_path, package, fmt, {"w": w1.numpy()})["out"]
    np.testing.assert_allclose(got, model(w1).detach().numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("model", ["gcnn", "cnn"])
def test_exported_fluid_program_runs_without_equiscale(fluid_runs, tmp_path, model):
    folder, _ = fluid_runs
    _check_fluid(tmp_path, _train_fluid(folder, model), "program")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gunet", "unet", "gfno", "fno", "cnn-aug"])
def test_exported_fluid_program_every_model(fluid_runs, tmp_path, model):
    folder, models = fluid_runs
    if model not in models:
        pytest.skip(f"build_model does not accept {model!r} here")
    _check_fluid(tmp_path, _train_fluid(folder, model), "program")


@pytest.mark.slow
def test_exported_fluid_aoti_package_runs_without_equiscale(fluid_runs, tmp_path):
    folder, _ = fluid_runs
    _check_fluid(tmp_path, _train_fluid(folder, "gcnn"), "aoti")
