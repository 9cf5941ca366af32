"""Steerable convolutions: a CNN whose input and output are vector fields, equivariant to rotations.

A 2D vector field (a velocity, a force density) turns with the plane: rotating the input by g moves
every sample to g x *and* turns every vector by g. ``equiscale.kernels`` solves the kernel
constraint K(g x) = rho_out(g) K(x) rho_in(g)^-1 for such fields, and ``SteerableConv2d`` learns a
combination of those kernels. Here an SO(2)-steerable CNN maps a vector field to a vector field;
it is exactly equivariant under the quarter turns that map the grid onto itself (checked in
float64) and close to it for other angles. ``export()`` turns each layer into a plain ``nn.Conv2d``.

    python examples/steerable_fields.py [--tiny]
"""
from __future__ import annotations

import argparse
import math
import os

import torch


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Build a kernel basis and a steerable CNN, check them; return the errors."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", default=bool(os.environ.get("EQUISCALE_EXAMPLE_TINY")),
                        help="a smaller grid, for tests")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    size = 16 if args.tiny else 48

    # --8<-- [start:basis]
    from equiscale.groups import SO2
    from equiscale.kernels import kernel_basis

    G = SO2()
    vector = G.irrep(1)  # R(theta) acting on (v_x, v_y)
    basis = kernel_basis(G, vector, vector, kernel_size=5, max_frequency=2)  # vector -> vector kernels
    points = torch.randn(10, 2, dtype=torch.float64)
    g = G.sample(1)[0]  # a random rotation matrix
    constraint = (basis(points @ g.T) - vector(g) @ basis(points) @ vector(g).T).abs().max().item()
    print(f"{len(basis)} vector -> vector kernels on a 5x5 grid; constraint error {constraint:.1e}")
    # --8<-- [end:basis]

    # --8<-- [start:model]
    from equiscale import nn

    field = nn.FieldType(G, [vector])  # one vector field: 2 channels
    hidden = nn.FieldType(G, [vector] * 4 + [G.irrep(0)] * 4)  # 4 vector fields and 4 scalar gates
    gated = nn.FieldType(G, [vector] * 4)
    model = nn.SteerableSequential(
        nn.SteerableConv2d(field, hidden, 5, padding=2, padding_mode="circular"),
        nn.GatedNonlinearity(hidden, 4),  # vector_i * sigmoid(gate_i): -> 4 vector fields
        nn.SteerableBatchNorm(gated),
        nn.SteerableConv2d(gated, field, 5, padding=2, padding_mode="circular"),
    ).double().eval()
    x = torch.randn(2, field.size, size, size, dtype=torch.float64)  # (batch, 2, H, W): (v_x, v_y)
    print(f"{sum(p.numel() for p in model.parameters())} parameters; output {tuple(model(x).shape)}")
    # --8<-- [end:model]

    # --8<-- [start:check]
    from equiscale.groups import C
    from equiscale.testing import GridField, equivariance_error

    # Quarter turns move the grid onto itself: test the SO(2) model on its subgroup C(4).
    action = GridField(field.restrict(C(4)).representation, axis=1)
    quarter_turns = equivariance_error(model, x, C(4), action, action, n_samples=8)
    print(f"equivariance error under 90-degree rotations, float64: {quarter_turns:.1e}")
    # --8<-- [end:check]

    # --8<-- [start:export]
    first = model[0].export()  # a plain nn.Conv2d holding the expanded filter
    export = (first(x) - model[0](x)).abs().max().item()
    print(f"{first}: same outputs to {export:.1e}")
    # --8<-- [end:export]
    return {"constraint": constraint, "quarter_turns": quarter_turns, "export": export,
            "kernels": float(len(basis)), "angle": math.degrees(math.atan2(g[1, 0], g[0, 0]))}


if __name__ == "__main__":
    main()
