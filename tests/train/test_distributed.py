"""Two processes (torchrun, gloo on CPU): one Trainer step of a fluid G-CNN equals one process on
the whole batch (same gradients, weights, weight average and logged loss), and processes whose
clocks differ stop on the time budget together."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from equiscale.train import load_checkpoint, make_loader, setup_distributed, wrap_ddp

from . import _distributed_worker as worker

HERE = Path(__file__).parent


@pytest.mark.serial
def test_two_processes_take_the_single_process_step(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(HERE / "_distributed_worker.py"), str(tmp_path / "ddp")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    distributed = torch.load(tmp_path / "ddp" / "grads.pt", weights_only=False)
    assert distributed["world"] == 2 and distributed["steps"] == 1
    two = load_checkpoint(tmp_path / "ddp" / "run" / "last.pt", kind="fluid")

    model, dataset = worker.model_and_data()
    single = worker.trainer(model, DataLoader(dataset, batch_size=worker.SAMPLES), tmp_path / "one")
    summary = single.fit()
    one = load_checkpoint(tmp_path / "one" / "last.pt", kind="fluid")
    assert summary["steps"] == 1
    assert distributed["loss"] == pytest.approx(summary["history"][-1]["loss"], rel=1e-12)
    for name, parameter in model.named_parameters():
        assert parameter.grad.abs().max() > 0, name
        torch.testing.assert_close(distributed["grads"][name], parameter.grad, rtol=1e-9, atol=1e-12, msg=name)
    for key in ("model", "ema"):
        assert two[key].keys() == one[key].keys()
        for name in one[key]:
            torch.testing.assert_close(two[key][name], one[key][name], rtol=1e-9, atol=1e-12, msg=f"{key} {name}")


@pytest.mark.serial
def test_processes_share_the_time_budget(tmp_path):
    """Each process's clock differs; they must stop together, or one waits for the other for ever."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(HERE / "_distributed_worker.py"), str(tmp_path), "budget"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"budget-{rank}.pt") for rank in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]["reason"] == "max_time" and ranks[0]["steps"] >= 2


def test_one_process_needs_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rank, world, device = setup_distributed("cpu")
    assert (rank, world, device) == (0, 1, torch.device("cpu")) and not torch.distributed.is_initialized()
    model, dataset = worker.model_and_data()
    assert wrap_ddp(model, device) is model
    loader = make_loader(dataset, batch_size=3, shuffle=True)
    assert loader.sampler.__class__.__name__ == "RandomSampler" and len(loader) == 2
    with pytest.raises(ValueError, match="device must be"):
        setup_distributed("tpu")
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(dataset, batch_size=0)
