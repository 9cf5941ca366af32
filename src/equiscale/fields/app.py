"""The fields application as equiscale discovers it: its commands, checkpoint kinds and demo section.

Declared in ``pyproject.toml`` as the entry point ``fields = "equiscale.fields.app:APPLICATION"``
of the group ``equiscale.applications``. Light: the settings classes are plain dataclasses,
everything heavy is named by ``"module:function"`` and imported only when used.
"""
from __future__ import annotations

from equiscale.applications import Application, CheckpointKind, Command, DemoSection
from equiscale.fields.settings import TrainEfield, TrainVelocity

__all__ = ["APPLICATION"]

APPLICATION = Application(
    name="fields",
    description="steerable CNNs on vector fields: 2D velocity (C(8)) and 3D charge density -> electric field (SO(3))",
    commands=(
        Command("train", "velocity", TrainVelocity, run="equiscale.fields.commands:train_velocity",
                help="2D velocity one step ahead: C(8)-steerable CNN vs C(4) G-CNN vs CNN, report and figures",
                description="Turns the vorticity trajectories of --data (`equiscale data fluid`) into velocity fields "
                "(spectrally, through the stream function) and trains, for the same budget on the same trajectories, "
                "a C(8)-steerable CNN on velocity (one vector field in and out), the C(4) G-CNN on vorticity and a "
                "plain CNN on velocity of about the same parameter count. Evaluates one-step and 10-step rollout "
                "errors of velocity on held-out trajectories and the equivariance errors under 90-degree rotations "
                "and, on an analytic flow, under any angle. Writes DIR/report.md, metrics.json and PNG figures; "
                "checkpoints in DIR/<model>/. Defaults: 60 s of CPU time per model."),
        Command("train", "efield", TrainEfield, run="equiscale.fields.commands:train_efield",
                help="3D electrostatics rho -> E: SO(3)-steerable CNN vs plain 3D CNNs, report and figures",
                description="Generates random neutral charge densities (Gaussian blobs) on a periodic cube, solves "
                "for the electric field E = -grad(phi), laplacian(phi) = -rho, spectrally, and trains an "
                "SO(3)-steerable CNN (scalar in, gated scalar/vector/l=2 hidden fields, vector out) and plain 3D "
                "CNNs (same parameters; same width) for the same budget. Evaluates the held-out error and the "
                "equivariance error under the 24 rotations of the cube and, on an analytic charge distribution, "
                "under random rotations. Writes DIR/report.md, metrics.json and PNG figures; checkpoints in "
                "DIR/<model>/. Defaults: 512 samples of 16^3, 60 s of CPU time per model."),
    ),
    checkpoints=(
        CheckpointKind("velocity", checks="equiscale.fields.checks:velocity_checks",
                       describe="a 2D velocity model (`equiscale train velocity`)"),
        CheckpointKind("efield", checks="equiscale.fields.checks:efield_checks",
                       describe="a charge density -> electric field model (`equiscale train efield`)"),
    ),
    demo=DemoSection("steerable", "equiscale.fields.demo:section_steerable", order=30),
)
