"""Training a potential with the shared :class:`equiscale.train.Trainer`.

``train_potential(TrainSettings(data="train.xyz", out="runs/cu"))`` reads the structures, checks
that they carry the labels the loss weighs, splits off a validation set (or reads ``valid``),
computes the statistics (reference energies, force RMS, neighbour count) on the training part,
builds an :class:`EquivariantPotential` and trains it with Adam, ``ReduceLROnPlateau``, early
stopping, the Trainer's moving average of the weights (``ema_decay``) and atomic checkpoints
(``out/last.pt`` each epoch, ``out/best.pt`` on improvement of the validation loss of the averaged
weights). Each checkpoint carries the header ``CheckpointHeader("potential", settings, statistics,
dtype)``, from which :func:`~equiscale.atomistic.checkpoints.load_potential` rebuilds the model.

Several processes: under ``torchrun --nproc_per_node K`` (``WORLD_SIZE > 1``) each process joins a
process group (gloo on CPU, nccl on GPU), the model is wrapped in ``DistributedDataParallel`` and
the data split among processes by a ``DistributedSampler`` (:mod:`equiscale.train.distributed`);
rank 0 writes the files.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from equiscale.atomistic.data import AtomicDataset, make_loader, resolve_dtype, split_indices
from equiscale.atomistic.loss import LossWeights, potential_loss
from equiscale.atomistic.model import EquivariantPotential
from equiscale.atomistic.settings import MODEL_KEYS, TrainSettings, load_settings
from equiscale.atomistic.statistics import dataset_statistics
from equiscale.atomistic.structures import AtomicStructure, missing_labels, read_structures
from equiscale.train.distributed import setup_distributed, unwrap

__all__ = ["TrainSettings", "load_settings", "build_model", "potential_from", "make_step", "setup_distributed", "check_labels",
           "train_potential", "MODEL_KEYS"]


def potential_from(options: Mapping[str, Any], stats: Mapping[str, Any]) -> EquivariantPotential:
    """The (float32) potential with the architecture ``options`` (the :data:`MODEL_KEYS` of a
    settings dict) and the data statistics ``stats`` (see :func:`dataset_statistics`)."""
    return EquivariantPotential(stats["elements"], avg_num_neighbors=stats["avg_num_neighbors"],
                                reference_energies=stats["reference_energies"], energy_scale=stats["force_rms"],
                                **{k: options[k] for k in MODEL_KEYS if k in options})


def build_model(settings: TrainSettings, stats: Mapping[str, Any]) -> EquivariantPotential:
    """The potential described by ``settings`` with the data statistics ``stats``, in its dtype."""
    return potential_from(settings.model_options(), stats).to(resolve_dtype(settings.dtype))


def make_step(weights: LossWeights) -> Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]:
    """The Trainer's step: in training mode it runs the (possibly DDP-wrapped) model with the forces
    (and stress) the loss weighs; in evaluation mode (validation, on the weight average when there is
    one) the plain module with every output, without building a second-order graph."""
    stress = weights.stress > 0

    def step(module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        use_stress = stress and bool(torch.isfinite(batch["stress"]).any())
        if module.training:
            prediction = module(batch, forces=weights.forces > 0, stress=use_stress)
        else:
            prediction = unwrap(module)(batch, stress=use_stress, create_graph=False)
        return potential_loss(prediction, batch, weights)

    return step


_LABELS = (("energies", "energy_weight"), ("forces", "force_weight"), ("stresses", "stress_weight"))


def check_labels(structures: Sequence[AtomicStructure], source: str | os.PathLike, settings: TrainSettings) -> None:
    """Refuse structures without the labels the loss weighs, with one line naming them.

    Energies and forces are needed when their weight is positive; stresses only when they are the
    one weighted label (molecules have none, so a missing stress is otherwise fine).

    Raises:
        ValueError: e.g. ``cu.xyz has no energies and no forces (all missing or NaN) ...``.
    """
    weighted = [(label, name) for label, name in _LABELS if getattr(settings, name) > 0]
    required = [pair for pair in weighted if pair[0] != "stresses"] or weighted
    missing = set(missing_labels(structures))
    absent = [pair for pair in required if pair[0] in missing]
    if not absent:
        return
    what = " and no ".join(label for label, _ in absent)
    text = f"{source} has no {what} (all missing or NaN), but the loss weighs them ({', '.join(n for _, n in absent)} > 0)"
    if len(absent) < len(required):
        text += f"; set {' and '.join(f'{n}: 0' for _, n in absent)} to train without them"
    raise ValueError(text)


def _datasets(settings: TrainSettings) -> tuple[AtomicDataset, AtomicDataset | None]:
    structures = read_structures(settings.data)
    check_labels(structures, settings.data, settings)
    valid = None
    if settings.valid:
        valid = read_structures(settings.valid)
        check_labels(valid, settings.valid, settings)
    dataset = AtomicDataset(structures, settings.cutoff)
    if valid is not None:
        return dataset, AtomicDataset(valid, settings.cutoff)
    if settings.valid_fraction <= 0 or len(dataset) < 2:
        return dataset, None
    train, held_out, _ = split_indices(len(dataset), valid=max(1, round(settings.valid_fraction * len(dataset))),
                                       seed=settings.seed)
    return dataset.subset(train), dataset.subset(held_out)


def train_potential(settings: TrainSettings, resume: bool | None = None, initial_weights: Mapping[str, Any] | None = None,
                    statistics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a potential.

    Args:
        settings: the run (``data`` and ``out`` at least).
        resume: continue from ``out/last.pt`` (default: ``settings.resume``).
        initial_weights: a warm start: the state dict of a potential of the same architecture
            (e.g. the previous round of active learning), loaded before training.
        statistics: the data statistics to build the model with (default: computed on the training
            part); a warm start passes those of the run it starts from.

    Returns:
        The Trainer's summary dict (``epochs``, ``steps``, ``train_time``, ``best``, ``stop_reason``,
        ``history``) plus ``is_main``: whether this process is rank 0. Under torchrun the process
        group is closed at the end.

    Raises:
        FileNotFoundError, ValueError: missing or unreadable structure files, labels the loss needs
            that the data lacks (checked before anything is written), an ``out`` that already holds
            a run (without ``resume``).
    """
    from equiscale.train import CheckpointHeader, Trainer, seed_everything, trainer_config
    from equiscale.train.distributed import cleanup, wrap_ddp

    resume = settings.resume if resume is None else resume
    if not settings.data:
        raise ValueError("no training data: pass --data FILE (or set 'data:' in the --config file)")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    rank, world, device = setup_distributed(settings.device)
    try:
        seed_everything(settings.seed)
        train_set, valid_set = _datasets(settings)
        stats = dict(statistics) if statistics is not None else dataset_statistics(train_set)
        model = build_model(settings, stats)
        if initial_weights is not None:
            model.load_state_dict(initial_weights)
        model = model.to(device)
        trained = wrap_ddp(model, device, broadcast_buffers=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=settings.lr_factor,
                                                               patience=settings.lr_patience)
        loaders = [make_loader(d, settings.batch_size, shuffle=shuffle, dtype=settings.dtype, seed=settings.seed,
                               distributed=world > 1) if d is not None else None
                   for d, shuffle in ((train_set, True), (valid_set, False))]
        weights = LossWeights(settings.energy_weight, settings.force_weight, settings.stress_weight)
        config = trainer_config(settings, patience=settings.patience, grad_clip=settings.grad_clip,
                                progress_bars=settings.progress and not settings.quiet, log_epochs=settings.progress,
                                validation_grad=True)
        header = CheckpointHeader("potential", settings, stats, settings.dtype)
        trainer = Trainer(trained, optimizer, make_step(weights), loaders[0], settings.out, config, val_data=loaders[1],
                          scheduler=scheduler, device=device, header=header)
        if trainer.is_main and settings.progress:
            print(f"training on {len(train_set)} structures ({world} process{'es' if world > 1 else ''}, {device}), "
                  f"validating on {len(valid_set) if valid_set is not None else 0}; "
                  f"{sum(p.numel() for p in model.parameters())} parameters; writing {Path(settings.out)}", flush=True)
        summary = trainer.fit(resume=resume)
    finally:
        cleanup()
    summary["is_main"] = rank == 0
    return summary
