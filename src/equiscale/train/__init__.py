"""The shared training engine: :class:`Trainer` (progress, atomic ``last.pt``/``best.pt`` checkpoints
with a :class:`CheckpointHeader`, exact resume, seeds, time budget, early stopping, a moving average
of the weights, several processes) and its helpers.

    trainer = Trainer(model, optimizer, step, train_loader, "runs/x", TrainerConfig(max_epochs=50, ema_decay=0.99),
                      val_data=val_loader, header=CheckpointHeader("fluid", settings, statistics, "float32"))
    summary = trainer.fit(resume=False)
    state = load_checkpoint("runs/x/best.pt", kind="fluid"); model.load_state_dict(inference_weights(state))

``step(model, batch) -> (loss, metrics)`` is all a task writes.
"""
from equiscale.train.checkpoint import FORMAT, CheckpointHeader, inference_weights, load_checkpoint, save_checkpoint
from equiscale.train.distributed import cleanup, is_main, make_loader, make_sampler, on_main, setup_distributed, wrap_ddp
from equiscale.train.ema import WeightAverage, ema_decay_at
from equiscale.train.metrics import count_parameters
from equiscale.train.progress import progress_bar, write_line
from equiscale.train.seeding import rng_state, seed_everything, set_rng_state
from equiscale.train.trainer import StepFn, Trainer, TrainerConfig, trainer_config

__all__ = [
    "Trainer",
    "TrainerConfig",
    "trainer_config",
    "StepFn",
    "CheckpointHeader",
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "inference_weights",
    "WeightAverage",
    "ema_decay_at",
    "setup_distributed",
    "wrap_ddp",
    "make_sampler",
    "make_loader",
    "cleanup",
    "is_main",
    "on_main",
    "seed_everything",
    "rng_state",
    "set_rng_state",
    "count_parameters",
    "progress_bar",
    "write_line",
]
