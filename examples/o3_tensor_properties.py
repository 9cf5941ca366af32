"""O(3) toolkit: irreps, spherical harmonics and a tensor product that predicts a tensor property.

A molecule-like cloud of points gets a symmetric 3x3 tensor (think of a polarizability): the
spherical harmonics of the points are summed into ``0e + 1o + 2e`` features, a learnable tensor
product squares them into ``0e + 2e`` (a scalar and a traceless symmetric part), and the
Clebsch-Gordan coefficients turn those into a Cartesian 3x3 tensor. Rotating the points rotates the
tensor, ``T(R x) = R T(x) R^T``, for any weights: checked in float64.

    python examples/o3_tensor_properties.py [--tiny] [--points N]
"""
from __future__ import annotations

import argparse
import os

import torch


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Build the irreps machinery, predict the tensor, check its equivariance; return the errors."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", default=bool(os.environ.get("EQUISCALE_EXAMPLE_TINY")),
                        help="fewer points, for tests")
    parser.add_argument("--points", type=int, default=None, help="points in the cloud (default 12, tiny 5)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    points = args.points or (5 if args.tiny else 12)

    # --8<-- [start:irreps]
    from equiscale import o3

    irreps = o3.Irreps("0e + 1o + 2e")  # a scalar, a vector (x, y, z) and an l = 2 tensor
    R = o3.rand_matrix(dtype=torch.float64)  # a random rotation
    D = irreps.D_from_matrix(R)  # block-diagonal (9, 9): [1], R itself, the 5x5 Wigner-D of l = 2
    print(f"{irreps}: dim {irreps.dim}; D^1(R) == R: {torch.allclose(D[1:4, 1:4], R)}")
    # --8<-- [end:irreps]

    # --8<-- [start:harmonics]
    x = torch.randn(points, 3, dtype=torch.float64)  # positions relative to the centre
    features = o3.spherical_harmonics(irreps, x, normalize=True).sum(0)  # (9,): invariant to renumbering
    rotated = o3.spherical_harmonics(irreps, x @ R.T, normalize=True).sum(0)
    print(f"Y(R x) = D(R) Y(x): error {float((rotated - D @ features).abs().max()):.1e}")
    # --8<-- [end:harmonics]

    # --8<-- [start:tensor]
    square = o3.FullyConnectedTensorProduct(irreps, irreps, "0e + 2e").double()  # learnable weights
    cg0, cg2 = o3.wigner_3j(1, 1, 0, dtype=torch.float64), o3.wigner_3j(1, 1, 2, dtype=torch.float64)

    def tensor_property(positions: torch.Tensor) -> torch.Tensor:
        """A symmetric 3x3 tensor of a point cloud: irreps features -> 0e + 2e -> Cartesian."""
        f = o3.spherical_harmonics(irreps, positions, normalize=True).sum(0)
        out = square(f[None], f[None])[0]  # (1 + 5,)
        return cg0[:, :, 0] * out[0] + torch.einsum("ijm,m->ij", cg2, out[1:])

    T, T_rotated = tensor_property(x).detach(), tensor_property(x @ R.T).detach()
    error = float((T_rotated - R @ T @ R.T).abs().max() / T.abs().max())
    print(f"T(R x) = R T(x) R^T: relative error {error:.1e}; symmetric: {torch.allclose(T, T.T)}")
    # --8<-- [end:tensor]

    # --8<-- [start:check]
    from equiscale.groups import O3
    from equiscale.testing import assert_equivariant

    # The same check at random rotations and reflections, through the irreps of the output.
    irreps_error = assert_equivariant(lambda p: square(*[o3.spherical_harmonics(irreps, p, True).sum(0, keepdim=True)] * 2),
                                      x, O3(), "1o", "0e + 2e")
    print(f"0e + 2e output under O(3): error {irreps_error:.1e}")
    # --8<-- [end:check]
    return {"cartesian": error, "irreps": irreps_error}


if __name__ == "__main__":
    main()
