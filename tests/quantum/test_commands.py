"""`equiscale train hamiltonian` / `evaluate hamiltonian` end to end on a tiny STO-3G water dataset:
train, resume, evaluate (metrics, JSON, SCF from the predicted H against minao, figures), bad input."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("pyscf")  # the tiny dataset is labelled with PySCF

from equiscale import cli  # noqa: E402
from equiscale.quantum.app import APPLICATION  # noqa: E402

from .hamiltonian_data import water_dataset  # noqa: E402

TINY = ("--channels", "4", "--pair-channels", "2", "--radial-hidden", "8", "--quiet", "--threads", "1")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return water_dataset(tmp_path_factory.mktemp("dft"))


@pytest.fixture
def run_cli():
    return lambda *args: cli.main([str(a) for a in args], applications=[APPLICATION])


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "h"
    status = cli.main([str(a) for a in ("train", "hamiltonian", "--data", data, "--out", out, "--epochs", "2",
                                        "--ema-decay", "0.9", *TINY)], applications=[APPLICATION])
    assert status == 0
    return out


def test_train_resume_and_evaluate(data, trained, run_cli, tmp_path, capsys):
    assert run_cli("train", "hamiltonian", "--data", data, "--out", trained, "--epochs", "3", "--resume", "--quiet") == 0
    assert "stopped after 3 epochs" in capsys.readouterr().out
    metrics_file = tmp_path / "m.json"
    assert run_cli("evaluate", "hamiltonian", trained, "--data", data, "--scf-frames", "1", "--no-figures",
                   "--json", metrics_file) == 0
    printed = capsys.readouterr().out
    assert "h_mae_uha" in printed and "scf_iterations_minao" in printed
    metrics = json.loads(metrics_file.read_text())
    assert metrics["frames"] == 8 and metrics["h_mae_uha"] > 0 and 0 <= metrics["orbital_cosine"] <= 1
    assert metrics["scf_energy_difference"] <= 1e-8 and metrics["scf_converged"] == 1.0
    assert not (trained / "hamiltonian.png").exists()


def test_evaluate_figures(data, trained, run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    assert run_cli("evaluate", "hamiltonian", trained, "--data", data, "--frames", "2", "--scf-frames", "1",
                   "--out", tmp_path) == 0
    for name in ("hamiltonian.png", "orbital_parity.png", "scf_convergence.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_check_command(trained, run_cli, capsys):
    assert run_cli("check", trained, "--samples", "2") == 0
    out = capsys.readouterr().out
    assert "O(3)" in out and "permutations" in out and "translations" in out


def test_bad_input(data, trained, run_cli, tmp_path, capsys):
    assert run_cli("train", "hamiltonian", "--data", tmp_path / "missing.dft", "--out", tmp_path / "r", *TINY) != 0
    assert "missing.dft" in capsys.readouterr().err
    assert run_cli("evaluate", "hamiltonian", tmp_path, "--data", data) != 0
    assert "best.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli("train", "hamiltonian", "--data", data, "--out", tmp_path / "r", "--model", "transformer")
    assert "invalid choice" in capsys.readouterr().err


def test_config_file_and_baseline(data, run_cli, tmp_path):
    pytest.importorskip("yaml")
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {data}\nout: {tmp_path / 'b'}\nepochs: 1\nmodel: baseline\nwidth: 16\nquiet: true\n")
    assert run_cli("train", "hamiltonian", "--config", config, "--threads", "1") == 0
    from equiscale.quantum.training import load_hamiltonian

    model, state = load_hamiltonian(tmp_path / "b")
    assert type(model).__name__ == "BaselineHamiltonian" and state["header"]["settings"]["width"] == 16
