"""Two-process training (gloo on CPU): DDP gradients equal the single-process gradients."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from equiscale.atomistic import collate
from equiscale.atomistic.training import make_step

from . import _ddp_worker

HERE = Path(__file__).parent


def _torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.serial
def test_two_processes_give_the_single_process_gradients(tmp_path, emt_file):
    out = tmp_path / "grads.pt"
    _torchrun(str(HERE / "_ddp_worker.py"), str(emt_file), str(out))
    distributed = torch.load(out, weights_only=False)
    assert distributed["world"] == 2

    model, dataset = _ddp_worker.model_and_data(str(emt_file))
    batch = collate([dataset[i] for i in range(4)], torch.float64)
    loss, _ = make_step(_ddp_worker.WEIGHTS)(model.train(), batch)
    loss.backward()
    grads = dict(model.named_parameters())
    assert distributed["grads"].keys() == grads.keys()
    for name, grad in distributed["grads"].items():
        expected = grads[name].grad
        assert expected.abs().max() > 0, name
        torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.slow
def test_the_train_command_under_torchrun(tmp_path, emt_file):
    config = tmp_path / "tiny.yaml"
    config.write_text("lmax: 1\nchannels: 4\nlayers: 2\ncutoff: 3.0\nnum_radial_basis: 4\nradial_hidden: 8\nreadout_hidden: 4\nbatch_size: 2\n")
    script = "import sys\nfrom equiscale import cli\nsys.exit(cli.main(sys.argv[1:]))\n"
    launcher = tmp_path / "launch.py"
    launcher.write_text(script)
    result = _torchrun(str(launcher), "train", "potential", "--data", str(emt_file), "--config", str(config),
                       "--epochs", "2", "--out", str(tmp_path / "run"), "--quiet")
    assert result.stdout.count("stopped after 2 epochs") == 1  # printed by rank 0 only
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
