"""The run functions of ``equiscale data fluid``, ``train fluid`` and ``evaluate fluid``.

Each takes its settings (see :mod:`.settings`, declared in :mod:`.app`) and returns the exit status;
problems a user can fix raise ValueError or FileNotFoundError with one line, which the command line
prints (it also applies ``--threads``). Heavy modules are imported inside the functions, so that
importing this module is cheap.
"""
from __future__ import annotations

from equiscale.continuum.settings import DataFluid, EvaluateFluid, TrainFluid

__all__ = ["data_fluid", "train_fluid", "evaluate_fluid"]


def data_fluid(settings: DataFluid) -> int:
    """Simulate the trajectories and write them to ``settings.out``."""
    from equiscale.continuum.data import generate_fluid

    data = generate_fluid(settings.out, trajectories=settings.trajectories, steps=settings.steps,
                          resolution=settings.resolution, viscosity=settings.viscosity, dt=settings.dt,
                          seed=settings.seed, progress=not settings.quiet)
    print(f"wrote {settings.out}: vorticity {list(data.vorticity.shape)}, dt={data.dt}, viscosity={data.viscosity}")
    return 0


def train_fluid(settings: TrainFluid) -> int:
    """Train one surrogate into ``settings.run_dir`` (or continue it with ``settings.resume``).

    Under torchrun every process calls this; only rank 0 writes files and prints the summary.
    """
    from equiscale.continuum import training

    if not settings.data:
        raise ValueError("no training data: pass --data FILE.npz (or set 'data:' in the --config file)")
    summary = training.train_fluid(settings.data, settings.run_dir, settings, resume=settings.resume,
                                   progress=not settings.quiet, epoch_lines=True)
    if summary["is_main"]:
        if "no 'layout' entry" in summary["layout"]:
            print(f"{settings.data}: {summary['layout']}")
        print(f"trained {settings.model} in {settings.run_dir}: {summary['parameters']} parameters, "
              f"{summary['steps']} steps, {summary['train_time']:.0f} s ({summary['stop_reason']}), "
              f"best validation loss {summary['best']:.3e}")
    return 0


def evaluate_fluid(settings: EvaluateFluid) -> int:
    """Evaluate the runs on ``settings.data``; print the report, write it with the figures (committees:
    also their calibration and ``--shifts``)."""
    from equiscale.continuum.evaluate import evaluate_runs

    report = evaluate_runs(settings.runs, settings.data, out=settings.out, rollout=settings.rollout,
                           figures=settings.figures, progress=not settings.quiet, shifts=settings.shifts,
                           calibration=settings.calibration, trajectories=settings.shift_trajectories,
                           viscosity_factor=settings.viscosity_factor, rollout_factor=settings.rollout_factor,
                           seed=settings.seed)
    print(report)
    return 0
