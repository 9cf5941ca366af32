"""An equivariant message-passing block in the style of Tensor Field Networks and NequIP."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from equiscale import o3
from equiscale.nn.points.cutoff import CosineCutoff, PolynomialCutoff
from equiscale.nn.points.fused import GatherTensorProductScatter, unsupported_reason
from equiscale.nn.points.graph import edge_pairs
from equiscale.nn.points.mlp import RadialMLP
from equiscale.nn.points.radial import BesselBasis, GaussianBasis
from equiscale.nn.points.scatter import scatter_sum
from equiscale.o3._linear import Linear
from equiscale.o3._tensor_product import TensorProduct

__all__ = ["MessagePassing", "uvu_instructions"]

_PAIRS_FROM = 256  # edges from which grouping j -> i with i -> j pays for its sort


def uvu_instructions(
    irreps_node_in: o3.Irreps, irreps_edge_attr: o3.Irreps, irreps_node_out: o3.Irreps
) -> tuple[o3.Irreps, list[tuple]]:
    """The channelwise paths of a TFN/NequIP convolution, and the irreps they produce.

    Every input irrep ``mul x ir_in`` meets every edge irrep ``ir_edge``; each ``ir_out`` in
    ``ir_in x ir_edge`` that ``irreps_node_out`` contains gives one ``uvu`` path with ``mul``
    weights. Paths are listed input block by input block, grouped by output irrep (this fixes the
    weight layout); the output irreps are sorted, as ``o3.Irreps.sort`` orders them.

    Returns:
        ``(irreps_mid, instructions)`` for ``o3.TensorProduct(irreps_node_in, irreps_edge_attr,
        irreps_mid, instructions, shared_weights=False, internal_weights=False)``.
    """
    wanted = {ir for _, ir in irreps_node_out}
    mid, instructions = [], []
    for i, (mul, ir_in) in enumerate(irreps_node_in):
        paths = [(ir_out, j) for j, (_, ir_edge) in enumerate(irreps_edge_attr) for ir_out in ir_in * ir_edge if ir_out in wanted]
        for ir_out, j in sorted(paths, key=lambda path: (path[0], path[1])):
            instructions.append((i, j, len(mid), "uvu", True))
            mid.append((mul, ir_out))
    irreps_mid, permutation, _ = o3.Irreps(mid).sort()
    return irreps_mid, [(i, j, permutation[k], mode, train) for i, j, k, mode, train in instructions]


class MessagePassing(nn.Module):
    r"""Equivariant convolution over a graph of points (TFN / NequIP interaction).

    For each edge ``e = (j -> i)`` (``edge_index[:, e] = [j, i]``) with relative position
    :math:`r_{ij} = p_j - p_i` (source minus target):

    .. math::
        m_i = \frac{1}{\sqrt{\bar n}} \sum_{j \to i}
              x_j \otimes_{w(|r_{ij}|)} Y(\hat r_{ij}), \qquad
        \text{out}_i = \text{Linear}(m_i)

    where :math:`Y` are the spherical harmonics ``irreps_edge_attr`` of the unit vector
    (``component`` normalisation, as e3nn/NequIP), :math:`\otimes_w` the channelwise (``uvu``) tensor
    product whose per-edge weights :math:`w` come from a radial MLP of the radial basis times the
    smooth cutoff, and :math:`\bar n` = ``avg_num_neighbors``. The sum is divided by
    :math:`\sqrt{\bar n}`, as NequIP does (not by :math:`\bar n`): with independent messages the
    output variance then stays independent of the neighbour count.

    Rotating and reflecting the positions and input features rotates the output; translating the
    positions leaves it unchanged. Zero-length edges (self loops, overlapping points) are not
    allowed: their direction is undefined.

    Args:
        irreps_node_in, irreps_node_out: node features in and out.
        irreps_edge_attr: spherical harmonics of the edge direction, parity (-1)^l, e.g. ``"0e+1o+2e"``
            (each l once for the fused kernel).
        num_radial_basis: number of radial basis functions.
        radial_hidden: hidden sizes of the radial MLP (an int for one hidden layer).
        avg_num_neighbors: the typical number of neighbours :math:`\bar n`.
        cutoff: the cutoff radius of the basis and envelope.
        radial_basis: ``"bessel"`` (trainable frequencies) or ``"gaussian"``.
        envelope: ``"polynomial"`` (with ``polynomial_p``) or ``"cosine"``.
        polynomial_p: the order p of the polynomial envelope.
        radial_act: the radial MLP's activation (normalised to unit second moment).
        fused: evaluate gather -> tensor product -> scatter with
            :class:`~equiscale.nn.points.fused.GatherTensorProductScatter` (True) or with
            ``o3.TensorProduct`` on per-edge tensors (False); None picks the fused kernel whenever
            it supports the irreps. The attribute ``fused`` can be changed after construction.

    Shapes: ``node_features (N, irreps_node_in.dim)``, ``positions (N, 3)``, ``edge_index (2, E)``
    -> ``(N, irreps_node_out.dim)``. A model whose layers share the edges passes the edge vectors,
    harmonics ``(E, irreps_edge_attr.dim)`` and radial weights ``(E, weight_numel)`` to
    :meth:`forward` instead of positions (see its arguments).
    """

    def __init__(
        self,
        irreps_node_in: o3.Irreps | str,
        irreps_node_out: o3.Irreps | str,
        irreps_edge_attr: o3.Irreps | str = "0e+1o+2e",
        num_radial_basis: int = 8,
        radial_hidden: int | Sequence[int] = (64,),
        avg_num_neighbors: float = 1.0,
        cutoff: float = 5.0,
        radial_basis: str = "bessel",
        envelope: str = "polynomial",
        polynomial_p: float = 6.0,
        radial_act: Callable[[torch.Tensor], torch.Tensor] = torch.nn.functional.silu,
        fused: bool | None = None,
    ) -> None:
        super().__init__()
        self.irreps_node_in, self.irreps_node_out = o3.Irreps(irreps_node_in), o3.Irreps(irreps_node_out)
        self.irreps_edge_attr = o3.Irreps(irreps_edge_attr)
        if any(ir.p != (-1) ** ir.l for _, ir in self.irreps_edge_attr):
            raise ValueError(f"irreps_edge_attr must be spherical harmonics of a vector, parity (-1)^l, got {self.irreps_edge_attr}")
        if not float(avg_num_neighbors) > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {avg_num_neighbors!r}")
        self.avg_num_neighbors = float(avg_num_neighbors)

        self.irreps_mid, self.instructions = uvu_instructions(self.irreps_node_in, self.irreps_edge_attr, self.irreps_node_out)
        self.tp = TensorProduct(
            self.irreps_node_in, self.irreps_edge_attr, self.irreps_mid, self.instructions, shared_weights=False, internal_weights=False
        )
        self.linear = Linear(self.irreps_mid.simplify(), self.irreps_node_out)

        if radial_basis == "bessel":
            self.radial_basis = BesselBasis(num_radial_basis, cutoff)
        elif radial_basis == "gaussian":
            self.radial_basis = GaussianBasis(num_radial_basis, cutoff)
        else:
            raise ValueError(f"radial_basis must be 'bessel' or 'gaussian', got {radial_basis!r}")
        if envelope == "polynomial":
            self.envelope = PolynomialCutoff(cutoff, polynomial_p)
        elif envelope == "cosine":
            self.envelope = CosineCutoff(cutoff)
        else:
            raise ValueError(f"envelope must be 'polynomial' or 'cosine', got {envelope!r}")
        hidden = [radial_hidden] if isinstance(radial_hidden, int) else list(radial_hidden)
        self.radial_mlp = RadialMLP([num_radial_basis, *hidden, self.tp.weight_numel], radial_act)

        reason = unsupported_reason(self.irreps_node_in, self.irreps_edge_attr, self.irreps_mid, self.instructions)
        if fused and reason is not None:
            raise ValueError(f"fused=True is not possible here: {reason}")
        self.kernel = None if reason is not None else GatherTensorProductScatter(
            self.irreps_node_in, self.irreps_edge_attr, self.irreps_mid, self.instructions
        )
        self.fused = self.kernel is not None if fused is None else bool(fused)
        self._dim_in = self.irreps_node_in.dim  # plain ints for forward (no Irreps objects to trace)
        self._edge_ls = [ir.l for mul, ir in self.irreps_edge_attr for _ in range(mul)]

    def edge_weights(self, lengths: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Per-edge tensor-product weights ``(E, weight_numel)`` from edge lengths ``(E,)``.

        Args:
            lengths: edge lengths ``(E,)``.
            pairs: optional ``(representative (P,), inverse (E,))`` grouping edges that share a
                length (e.g. ``j -> i`` and ``i -> j``): the radial MLP then runs on the ``P``
                representatives only and its rows are copied to every edge.
        """
        if pairs is not None:
            representative, inverse = pairs
            return self.edge_weights(lengths.index_select(0, representative)).index_select(0, inverse)
        return self.radial_mlp(self.radial_basis(lengths) * self.envelope(lengths).unsqueeze(-1))

    @property
    def weight_numel(self) -> int:
        """Number of per-edge weights (columns of :meth:`edge_weights`)."""
        return self.tp.weight_numel

    def forward(self, node_features: torch.Tensor, positions: torch.Tensor | None = None, edge_index: torch.Tensor | None = None, *,
                edge_vectors: torch.Tensor | None = None, edge_attr: torch.Tensor | None = None,
                edge_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Convolve node features over the edges ``source -> target``.

        Either give ``positions`` (the edge vectors are ``positions[source] - positions[target]``)
        or any of the precomputed per-edge inputs, which several layers may share:

        Args:
            node_features: ``(N, irreps_node_in.dim)`` in ``mul_ir`` layout.
            positions: ``(N, 3)``; only needed when the edge vectors are not given and the
                harmonics or weights must be computed.
            edge_index: ``(2, E)`` integer ``[source, target]``.
            edge_vectors: ``(E, 3)`` ``source - target`` (with periodic shifts if any).
            edge_attr: ``(E, irreps_edge_attr.dim)`` spherical harmonics of the edge directions
                (``component`` normalisation, e3nn's layout).
            edge_weights: ``(E, weight_numel)`` radial weights, e.g. :meth:`edge_weights` of the
                edge lengths.

        Returns:
            ``(N, irreps_node_out.dim)`` in ``mul_ir`` layout.
        """
        num_nodes = node_features.shape[0] if node_features.dim() == 2 else -1
        if node_features.dim() != 2 or node_features.shape[1] != self._dim_in:
            raise ValueError(f"node_features must have shape (N, {self._dim_in}), got {tuple(node_features.shape)}")
        if edge_index is None or edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.is_floating_point():
            shape = None if edge_index is None else tuple(edge_index.shape)
            raise ValueError(f"edge_index must be an integer tensor of shape (2, E), got {shape}")
        num_edges = edge_index.shape[1]
        pairs = None
        if edge_vectors is None and (edge_attr is None or edge_weights is None):
            if positions is None or positions.shape != (num_nodes, 3):
                shape = None if positions is None else tuple(positions.shape)
                raise ValueError(f"positions must have shape ({num_nodes}, 3) (or pass edge_vectors), got {shape}")
            edge_vectors = positions.index_select(0, edge_index[0]) - positions.index_select(0, edge_index[1])
            if edge_weights is None and num_edges >= _PAIRS_FROM:  # j -> i and i -> j: one radial MLP row
                pairs = edge_pairs(edge_index, num_nodes)
        if edge_vectors is not None and edge_vectors.shape != (num_edges, 3):
            raise ValueError(f"edge_vectors must have shape ({num_edges}, 3), got {tuple(edge_vectors.shape)}")
        if edge_attr is None:
            edge_attr = o3.spherical_harmonics(self._edge_ls, edge_vectors, normalize=True, normalization="component")
        elif edge_attr.shape != (num_edges, self.irreps_edge_attr.dim):
            raise ValueError(f"edge_attr must have shape ({num_edges}, {self.irreps_edge_attr.dim}), got {tuple(edge_attr.shape)}")
        if edge_weights is None:
            edge_weights = self.edge_weights(edge_vectors.norm(dim=-1), pairs)
        elif edge_weights.shape != (num_edges, self.weight_numel):
            raise ValueError(f"edge_weights must have shape ({num_edges}, {self.weight_numel}), got {tuple(edge_weights.shape)}")
        return self.linear(self.messages(node_features, edge_attr, edge_weights, edge_index) * self.avg_num_neighbors**-0.5)

    def messages(self, node_features: torch.Tensor, edge_attr: torch.Tensor, edge_weights: torch.Tensor,
                 edge_index: torch.Tensor) -> torch.Tensor:
        """The summed messages before normalisation and Linear: ``(N, irreps_mid.dim)``, ``mul_ir`` layout.

        ``sum_{e: target(e) = n} TP(x[source(e)], edge_attr[e], edge_weights[e])``, through the
        fused kernel when ``self.fused`` and through ``o3.TensorProduct`` + ``scatter_sum`` otherwise.
        """
        num_nodes = node_features.shape[0]
        if self.fused:
            if self.kernel is None:
                raise ValueError("fused=True is not possible for these irreps")
            return self.kernel(node_features, edge_attr, edge_weights, edge_index, num_nodes)
        source, target = edge_index[0], edge_index[1]
        return scatter_sum(self.tp(node_features.index_select(0, source), edge_attr, edge_weights), target, num_nodes)

    def extra_repr(self) -> str:
        return f"{self.irreps_node_in} -> {self.irreps_node_out}, edge {self.irreps_edge_attr}, fused={self.fused}"
