"""Training a potential with the shared :class:`equiscale.train.Trainer`.

``train_potential(TrainSettings(data="train.xyz", out="runs/cu"))`` reads the structures, splits
off a validation set (or reads ``valid``), computes the statistics (reference energies, force RMS,
neighbour count) on the training part, builds an :class:`EquivariantPotential` with an EMA of its
weights, and trains with Adam, ``ReduceLROnPlateau``, early stopping and atomic checkpoints
(``out/last.pt`` each epoch, ``out/best.pt`` on improvement; both hold the EMA weights, which
:func:`~equiscale.atomistic.checkpoints.load_potential` uses).

Several processes: under ``torchrun --nproc_per_node K`` (``WORLD_SIZE > 1``) each process joins a
process group (gloo on CPU, nccl on GPU), the model is wrapped in ``DistributedDataParallel`` and
the data split among processes by a ``DistributedSampler``; rank 0 writes the files.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from equiscale.atomistic.data import AtomicDataset, make_loader, resolve_dtype, split_indices
from equiscale.atomistic.ema import EMAModel
from equiscale.atomistic.loss import LossWeights, potential_loss
from equiscale.atomistic.model import EquivariantPotential
from equiscale.atomistic.statistics import dataset_statistics
from equiscale.atomistic.structures import read_structures

__all__ = ["TrainSettings", "load_settings", "build_model", "make_step", "setup_distributed", "train_potential"]

MODEL_KEYS = ("lmax", "channels", "layers", "cutoff", "num_radial_basis", "radial_basis", "radial_hidden", "readout_hidden")


@dataclass
class TrainSettings:
    """Everything a training run needs; a YAML file may set any field (same names)."""

    data: str = ""
    out: str = ""
    valid: str | None = None
    valid_fraction: float = 0.1
    epochs: int = 100
    batch_size: int = 4
    lr: float = 5e-3
    lr_factor: float = 0.5
    lr_patience: int = 5
    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 1.0
    ema_decay: float = 0.99
    patience: int | None = 20
    max_time: float | None = None
    grad_clip: float | None = None
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    progress: bool = True
    lmax: int = 2
    channels: int = 32
    layers: int = 2
    cutoff: float = 5.0
    num_radial_basis: int = 8
    radial_basis: str = "bessel"
    radial_hidden: int = 64
    readout_hidden: int = 16

    def __post_init__(self) -> None:
        resolve_dtype(self.dtype)
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"need epochs >= 0, batch_size >= 1 and lr > 0; got {self.epochs}, {self.batch_size}, {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        LossWeights(self.energy_weight, self.force_weight, self.stress_weight)


def load_settings(path: str | os.PathLike | None = None, **overrides: Any) -> TrainSettings:
    """Settings from a YAML file (optional) with ``overrides`` (None values ignored) on top."""
    values: dict[str, Any] = {}
    if path is not None:
        import yaml

        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file {path} does not exist")
        with open(path) as file:
            loaded = yaml.safe_load(file) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping of settings")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return TrainSettings(**values)


def build_model(settings: TrainSettings, stats: dict[str, Any]) -> EquivariantPotential:
    """The potential described by ``settings`` with the data statistics ``stats``, in its dtype."""
    model = EquivariantPotential(stats["elements"], avg_num_neighbors=stats["avg_num_neighbors"],
                                 reference_energies=stats["reference_energies"], energy_scale=stats["force_rms"],
                                 **{k: getattr(settings, k) for k in MODEL_KEYS})
    return model.to(resolve_dtype(settings.dtype))


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def make_step(weights: LossWeights) -> Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]:
    """The Trainer's step: training runs the (possibly DDP-wrapped) model, evaluation its EMA."""
    stress = weights.stress > 0

    def step(module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        use_stress = stress and bool(torch.isfinite(batch["stress"]).any())
        if module.training:
            prediction = module(batch, forces=weights.forces > 0, stress=use_stress)
        else:
            inner = _unwrap(module)
            prediction = getattr(inner, "ema", inner)(batch, stress=use_stress, create_graph=False)
        return potential_loss(prediction, batch, weights)

    return step


def setup_distributed(device: str = "auto") -> tuple[int, int, torch.device]:
    """Join the process group that torchrun describes (if any); ``(rank, world_size, device)``."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but CUDA is not available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def _datasets(settings: TrainSettings) -> tuple[AtomicDataset, AtomicDataset | None]:
    structures = read_structures(settings.data)
    dataset = AtomicDataset(structures, settings.cutoff)
    if settings.valid:
        return dataset, AtomicDataset(read_structures(settings.valid), settings.cutoff)
    if settings.valid_fraction <= 0 or len(dataset) < 2:
        return dataset, None
    train, valid, _ = split_indices(len(dataset), valid=max(1, round(settings.valid_fraction * len(dataset))), seed=settings.seed)
    return dataset.subset(train), dataset.subset(valid)


def train_potential(settings: TrainSettings, resume: bool = False) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a potential; returns the Trainer's summary dict (plus
    ``is_main``: whether this process is rank 0). Under torchrun the process group is closed at the end."""
    from equiscale.train import Trainer, TrainerConfig, seed_everything

    if not settings.data or not settings.out:
        raise ValueError("settings need both 'data' (a structure file) and 'out' (a run directory)")
    rank, world, device = setup_distributed(settings.device)
    seed_everything(settings.seed)
    train_set, valid_set = _datasets(settings)
    stats = dataset_statistics(train_set)
    model = build_model(settings, stats).to(device)
    wrapped = EMAModel(model, settings.ema_decay)
    trained: nn.Module = wrapped
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(wrapped, device_ids=[device.index] if device.type == "cuda" else None,
                                                      broadcast_buffers=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    wrapped.attach(optimizer)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=settings.lr_factor, patience=settings.lr_patience)
    loaders = [make_loader(d, settings.batch_size, shuffle=shuffle, dtype=settings.dtype, seed=settings.seed, distributed=world > 1)
               if d is not None else None for d, shuffle in ((train_set, True), (valid_set, False))]
    weights = LossWeights(settings.energy_weight, settings.force_weight, settings.stress_weight)
    config = TrainerConfig(max_epochs=settings.epochs, max_time=settings.max_time, patience=settings.patience,
                           grad_clip=settings.grad_clip, seed=settings.seed, progress=settings.progress, validation_grad=True)
    extra = {"kind": "equiscale.atomistic.EquivariantPotential", "model_config": model.config,
             "settings": dataclasses.asdict(settings), "dtype": settings.dtype, "statistics": stats}
    step = make_step(weights)
    trainer = Trainer(trained, optimizer, step, loaders[0], settings.out, config, val_data=loaders[1],
                      scheduler=scheduler, device=device, extra=extra)
    if trainer.is_main and settings.progress:
        print(f"training on {len(train_set)} structures ({world} process{'es' if world > 1 else ''}, {device}), "
              f"validating on {len(valid_set) if valid_set is not None else 0}; "
              f"{sum(p.numel() for p in model.parameters())} parameters; writing {Path(settings.out)}", flush=True)
    try:
        summary = trainer.fit(resume=resume)
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    summary["is_main"] = rank == 0
    return summary
