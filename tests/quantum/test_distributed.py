"""`equiscale train hamiltonian` under torchrun: two processes (gloo on CPU), one set of files, one summary."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from equiscale.train import load_checkpoint

from .hamiltonian_data import water_dataset


@pytest.mark.slow
@pytest.mark.serial
def test_train_hamiltonian_under_torchrun(tmp_path):
    data = water_dataset(tmp_path / "data", frames=6)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "equiscale.cli", "train", "hamiltonian", "--data", str(data), "--out", str(out),
               "--channels", "4", "--layers", "1", "--epochs", "2", "--batch-size", "2", "--ema-decay", "0.9",
               "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("stopped after 2 epochs") == 1  # rank 0 alone prints the summary
    assert result.stdout.count("epoch 2/2") == 1  # and the epoch lines
    state = load_checkpoint(out / "best.pt", kind="hamiltonian")
    assert state["header"]["settings"]["ema_decay"] == 0.9 and "ema" in state
