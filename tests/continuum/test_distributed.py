"""`equiscale train fluid` under torchrun: two processes (gloo on CPU), one set of files, one summary."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from equiscale.continuum.data import generate_fluid
from equiscale.train import load_checkpoint


@pytest.mark.slow
@pytest.mark.serial
def test_train_fluid_under_torchrun(tmp_path):
    generate_fluid(tmp_path / "train.npz", trajectories=3, steps=4, resolution=8, progress=False)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "equiscale.cli", "train", "fluid", "--data", str(tmp_path / "train.npz"), "--out", str(out),
               "--model", "gcnn", "--width", "2", "--blocks", "1", "--kernel-size", "3", "--epochs", "2",
               "--validation-trajectories", "1", "--batch-size", "4", "--ema-decay", "0.9", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("trained gcnn") == 1  # rank 0 alone prints the summary
    assert result.stdout.count("epoch 2") == 1  # and the epoch lines
    state = load_checkpoint(out / "best.pt", kind="fluid")
    assert state["header"]["settings"]["ema_decay"] == 0.9 and (out / "config.json").is_file()
