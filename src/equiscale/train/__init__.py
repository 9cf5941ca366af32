"""The shared training loop: :class:`Trainer` (progress, atomic ``last.pt``/``best.pt`` checkpoints,
resume, seeds, time budget, early stopping, ready for ``torch.distributed``) and its helpers.

    trainer = Trainer(model, optimizer, step, train_loader, "runs/x", TrainerConfig(max_epochs=50),
                      val_data=val_loader, extra={"settings": ...})
    summary = trainer.fit(resume=False)

``step(model, batch) -> (loss, metrics)`` is all a task writes.
"""
from equiscale.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from equiscale.train.progress import progress_bar, write_line
from equiscale.train.trainer import StepFn, Trainer, TrainerConfig

__all__ = [
    "Trainer",
    "TrainerConfig",
    "StepFn",
    "save_checkpoint",
    "load_checkpoint",
    "seed_everything",
    "rng_state",
    "set_rng_state",
    "progress_bar",
    "write_line",
]
