"""`equiscale train efield` under torchrun: two processes (gloo on CPU), one set of files, one summary."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from equiscale.fields.efield import EFIELD_MODELS
from equiscale.train import load_checkpoint


@pytest.mark.slow
@pytest.mark.serial
def test_train_efield_under_torchrun(tmp_path):
    out = tmp_path / "run"
    # --epochs decides when to stop: each process measures its own time, so a budget could stop them apart
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "equiscale.cli", "train", "efield", "--quick", "--out", str(out), "--epochs", "2",
               "--max-time", "600", "--ema-decay", "0.9", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stdout = result.stdout
    assert stdout.count("wrote ") == 1 and stdout.count("| SO(3)-steerable CNN |") == 1  # rank 0 alone prints
    for label in EFIELD_MODELS.values():
        assert stdout.count(f"training {label}:") == 1
    assert stdout.count("epoch 2/2") == len(EFIELD_MODELS)  # one line per model and epoch
    for name in EFIELD_MODELS:
        state = load_checkpoint(out / name / "best.pt", kind="efield")
        assert state["header"]["settings"]["ema_decay"] == 0.9 and "ema" in state
        assert (out / name / "last.pt").is_file() and (out / name / "history.json").is_file()
        history = load_checkpoint(out / name / "last.pt", kind="efield")["history"]
        assert [row["step"] for row in history] == [2, 4]  # 10 training samples: 5 per process, batches of 4
    files = sorted(path.name for path in out.iterdir() if path.is_file())
    assert files == ["config.json", "efield_equivariance_angles.png", "efield_slice.png", "metrics.json", "report.md"]
