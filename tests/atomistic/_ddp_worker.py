"""Run under ``torchrun --nproc_per_node 2``: one DDP training step, gradients saved by rank 0.

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 _ddp_worker.py DATA OUT``.
Every process builds the same float64 model (same seed) and takes its half of the first 4
structures through the production path (``equiscale.train.distributed``: ``setup_distributed``,
``wrap_ddp``; ``make_loader(distributed=True)``, ``make_step``); rank 0 writes the averaged gradients
to ``OUT``.
"""
import sys

import torch

from equiscale.atomistic import AtomicDataset, dataset_statistics, make_loader, read_structures
from equiscale.atomistic.loss import LossWeights
from equiscale.atomistic.training import TrainSettings, build_model, make_step
from equiscale.train.distributed import cleanup, setup_distributed, wrap_ddp

SETTINGS = dict(data="unused.xyz", dtype="float64", lmax=1, channels=4, layers=2, cutoff=3.0, num_radial_basis=4, radial_hidden=8, readout_hidden=4)
WEIGHTS = LossWeights(energy=1.0, forces=1.0, stress=1.0)


def model_and_data(path: str):
    dataset = AtomicDataset(read_structures(path)[:4], SETTINGS["cutoff"])
    torch.manual_seed(0)
    model = build_model(TrainSettings(**SETTINGS), dataset_statistics(dataset))
    return model, dataset


def main(data: str, out: str) -> None:
    rank, world, _ = setup_distributed("cpu")
    model, dataset = model_and_data(data)
    ddp = wrap_ddp(model, "cpu", broadcast_buffers=False)
    assert isinstance(ddp, torch.nn.parallel.DistributedDataParallel)
    batch = next(iter(make_loader(dataset, batch_size=2, dtype="float64", distributed=True)))
    loss, _ = make_step(WEIGHTS)(ddp.train(), batch)
    loss.backward()
    if rank == 0:
        torch.save({"world": world, "grads": {n: p.grad for n, p in model.named_parameters()}}, out)
    cleanup()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
