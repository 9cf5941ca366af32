"""The message-passing block assembled from e3nn 0.6 modules: an independent reference.

Spherical harmonics, the ``uvu`` TensorProduct, FullyConnectedNet and Linear come from e3nn; the
Bessel basis and polynomial envelope are written out from their formulas (DimeNet / NequIP).
``from_ours`` copies the trainable weights of an ``equiscale.nn.MessagePassing``.
"""
from __future__ import annotations

import math

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3 as e3nn_o3


class E3nnMessagePassing(torch.nn.Module):
    def __init__(self, ours) -> None:
        super().__init__()
        self.irreps_edge_attr = str(ours.irreps_edge_attr)
        self.cutoff = ours.radial_basis.cutoff
        self.p = ours.envelope.p
        self.avg_num_neighbors = ours.avg_num_neighbors
        self.register_buffer("frequencies", ours.radial_basis.frequencies.detach().clone())
        self.tp = e3nn_o3.TensorProduct(
            str(ours.irreps_node_in), self.irreps_edge_attr, str(ours.irreps_mid), ours.instructions,
            shared_weights=False, internal_weights=False,
        )
        self.fc = e3nn_nn.FullyConnectedNet(ours.radial_mlp.sizes, torch.nn.functional.silu)
        self.linear = e3nn_o3.Linear(str(ours.irreps_mid.simplify()), str(ours.irreps_node_out))
        with torch.no_grad():
            for i, weight in enumerate(ours.radial_mlp.weights):
                getattr(self.fc, f"layer{i}").weight.copy_(weight)
            self.linear.weight.copy_(ours.linear.weight)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        source, target = edge_index
        vec = pos[source] - pos[target]
        r = vec.norm(dim=-1)
        sh = e3nn_o3.spherical_harmonics(self.irreps_edge_attr, vec, True, normalization="component")
        basis = 2.0 / self.cutoff * torch.sin(self.frequencies * r[:, None] / self.cutoff) / r[:, None]
        u, p = r / self.cutoff, self.p
        envelope = (1 - (p + 1) * (p + 2) / 2 * u**p + p * (p + 2) * u ** (p + 1) - p * (p + 1) / 2 * u ** (p + 2)) * (u < 1)
        weights = self.fc(basis * envelope[:, None])
        messages = self.tp(x[source], sh, weights)
        summed = torch.zeros(x.shape[0], messages.shape[1], dtype=x.dtype).index_add(0, target, messages)
        return self.linear(summed / math.sqrt(self.avg_num_neighbors))
