"""``Norm``: the norm of every irrep copy in a direct sum, as ``e3nn.o3.Norm``."""
from __future__ import annotations

import torch

from equiscale.o3._irreps import Irreps
from equiscale.o3._tensor_product import TensorProduct

__all__ = ["Norm"]


class Norm(torch.nn.Module):
    """Norm (or squared norm) of each irrep copy of ``irreps_in``: one ``0e`` per copy.

    Same arguments, numbers and state-dict keys (``tp.weight``, ``tp.output_mask``) as e3nn 0.6:
    the squared norms come from a weightless ``uuu`` tensor product of the input with itself in
    component normalisation (``|x|^2`` of each copy, exactly); the norm is
    ``sqrt(relu(|x|^2))``, whose gradient at zero is zero, not NaN.

    Args:
        irreps_in: irreps of the input; simplified (adjacent equal irreps merged).
        squared: return ``|x|^2`` instead of ``|x|``.

    Attributes:
        irreps_in: the simplified input irreps.
        irreps_out: ``Irreps`` of ``irreps_in.num_irreps`` scalars ``0e``, simplified.
    """

    squared: bool

    def __init__(self, irreps_in, squared: bool = False) -> None:
        super().__init__()
        irreps_in = Irreps(irreps_in).simplify()
        irreps_out = Irreps([(mul, "0e") for mul, _ in irreps_in])
        instructions = [(i, i, i, "uuu", False, ir.dim) for i, (_, ir) in enumerate(irreps_in)]
        self.tp = TensorProduct(irreps_in, irreps_in, irreps_out, instructions,
                                irrep_normalization="component")
        self.irreps_in = irreps_in
        self.irreps_out = irreps_out.simplify()
        self.squared = squared

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in})"

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Norms of the irrep copies of ``features``.

        Args:
            features: ``(..., irreps_in.dim)``.

        Returns:
            ``(..., irreps_out.dim)``: one norm (or squared norm) per irrep copy, in input order.
        """
        out = self.tp(features, features)
        if self.squared:
            return out
        return out.relu().sqrt()
