"""Continuum scale: train a small C(4) G-CNN on simulated 2D turbulence and check its equivariance.

    python examples/continuum_fluid.py                  # about a minute on 2 CPU cores
    python examples/continuum_fluid.py --tiny           # a few seconds (what the tests run)

``EQUISCALE_EXAMPLE_TINY=1`` in the environment has the same effect as ``--tiny``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Simulate, train, roll out and check; return the measured numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", default=bool(os.environ.get("EQUISCALE_EXAMPLE_TINY")),
                        help="tiny sizes, for tests")
    parser.add_argument("--out", default=None, help="where to keep data and the run (default: a temporary folder)")
    parser.add_argument("--seconds", type=float, default=None, help="training time (default 40, tiny 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    resolution, trajectories, steps = (16, 3, 6) if args.tiny else (32, 10, 30)
    seconds = args.seconds or (2.0 if args.tiny else 40.0)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        # --8<-- [start:simulate]
        from equiscale.continuum.data import generate_fluid

        # Decaying 2D turbulence: vorticity [trajectories, steps + 1, R, R] on a periodic square.
        data = generate_fluid(out / "fluid.npz", trajectories=trajectories, steps=steps, resolution=resolution,
                              viscosity=1e-2, dt=0.2, progress=False)
        print(f"simulated vorticity {data.vorticity.shape}")
        # --8<-- [end:simulate]

        # --8<-- [start:train]
        from equiscale.continuum.training import FluidTrainConfig, load_run, train_fluid

        # A C(4) G-CNN mapping w(t) -> w(t + dt); the last trajectory validates (and picks best.pt).
        config = FluidTrainConfig(model="gcnn", group="C4", width=4, blocks=1, kernel_size=5,
                                  validation_trajectories=1, max_time=seconds, epochs=10_000)
        summary = train_fluid(out / "fluid.npz", out / "gcnn", config, progress=False)
        model, record = load_run(out / "gcnn")  # best.pt, in eval mode
        print(f"trained {summary['parameters']} parameters for {summary['steps']} steps")
        # --8<-- [end:train]

        # --8<-- [start:evaluate]
        from equiscale.continuum.evaluate import rollout_errors

        held_out = torch.from_numpy(data.vorticity[-1:])  # the validation trajectory, [1, T + 1, R, R]
        curve, predicted = rollout_errors(model, held_out, steps=5)
        print("relative L2 error along a 5-step rollout:", " ".join(f"{e:.3f}" for e in curve))
        # --8<-- [end:evaluate]

        # --8<-- [start:check]
        from equiscale.groups import C
        from equiscale.testing import GridField, assert_equivariant

        # Rotating the input by 90 degrees rotates the prediction: exact to float64 rounding.
        model64 = model.double()
        error = assert_equivariant(model64, held_out[:, 0].double(), C(4), GridField(), GridField())
        print(f"equivariance error under C(4), float64: {error:.1e}")
        # --8<-- [end:check]
    return {"rollout_5": float(curve[-1]), "equivariance": error, "steps": float(summary["steps"])}


if __name__ == "__main__":
    main()
