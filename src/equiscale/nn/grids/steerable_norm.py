"""Batch normalisation of steerable feature maps: :class:`SteerableBatchNorm`.

Features are plain tensors ``(B, field_type.size, *grid)`` (``(H, W)`` in 2D, ``(D, H, W)`` in 3D);
field ``i`` occupies ``field_type.slices[i]`` and transforms by ``rho_i = field_type.representations[i]``,
and a group element acts as ``(g.F)(p) = rho(g) F(g^-1 p)``.

Normalising each channel on its own, as ``torch.nn.BatchNorm2d`` does, is not equivariant: the
channels of a vector field mix under a rotation, and their means and variances would have to be
equal and their mean zero. Here each field is treated as a whole:

* the mean is removed only in the field's invariant subspace (the vectors that ``rho_i`` fixes,
  :func:`~equiscale.nn.grids.field_type.invariant_vectors`), where a mean can be nonzero without
  breaking the symmetry: nothing for a vector field, the mean of the constant direction for a
  regular field, the mean itself for a trivial scalar;
* the variance is one scalar per field, the mean squared norm of the centred field over the batch
  and the grid divided by the field's dimension (so unit-variance channels give 1);
* the affine map is one scale per field (multiplying the whole field) and a shift in the invariant
  subspace.

``P_i`` (the projector on the invariant subspace) commutes with ``rho_i(g)`` and norms are
invariant, so the layer is equivariant in training and in eval mode, for every group element.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from equiscale.nn.grids.field_type import FieldType, as_field_type
from equiscale.nn.grids.steerable_nonlinear import (_check_features, _FieldGroups, _InvariantBases, _merge_groups,
                                                    _split_groups)

__all__ = ["SteerableBatchNorm"]


class SteerableBatchNorm(nn.Module):
    """Equivariant batch norm of steerable fields, 2D or 3D (any number of grid axes).

    For each field ``x`` (``d`` channels, invariant basis ``V`` of ``r`` columns, ``P = V V^T``)::

        mean = P E[x]                         (over batch and grid; running mean in eval)
        var  = E[|x - mean|^2] / d            (one scalar per field; running var in eval)
        y    = weight * (x - mean) / sqrt(var + eps) + V bias

    ``weight`` has one entry per field, ``bias`` one per invariant direction (``r`` per field, in
    field order, in the coordinates of ``V``; ``running_mean`` likewise). Running statistics
    follow ``torch.nn.BatchNorm``: ``momentum`` (None: cumulative average), the variance stored
    without bias (the ``n / (n - 1)`` correction applies to the invariant directions, where a mean
    was estimated). A rotation acts on the output as on the input.

    Args:
        field_type: the type of the input and of the output.
        eps: added to the variance.
        momentum: the weight of the current batch in the running statistics, or None.
        affine: learn ``weight`` (init 1) and ``bias`` (init 0).
        track_running_stats: keep running statistics and use them in eval mode (else batch
            statistics always).

    Shapes: ``(B, field_type.size, *grid)`` -> same shape. Fields with the same dimension and the
    same invariant subspace are normalised together (a few tensor ops per such group).
    """

    def __init__(self, field_type: FieldType, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        self.field_type = self.in_type = self.out_type = as_field_type(field_type, f"{name}: field_type")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps, self.momentum, self.affine = float(eps), momentum, affine
        self.track_running_stats = track_running_stats

        bases = _InvariantBases()
        vectors = [bases(rep) for rep in field_type.representations]
        # one label per (dimension, invariant subspace): compare projectors, keep the first basis
        kinds: list[tuple[int, Tensor, Tensor]] = []
        labels = []
        for v in vectors:
            projector = v @ v.T
            for k, (dim, p, _) in enumerate(kinds):
                if dim == v.shape[0] and torch.allclose(p, projector, atol=1e-9):
                    labels.append(k)
                    break
            else:
                kinds.append((v.shape[0], projector, v))
                labels.append(len(kinds) - 1)
        self._layout = _FieldGroups(field_type, labels)
        self._layout.register(self)
        offsets = torch.tensor([0] + [v.shape[1] for v in vectors]).cumsum(0).tolist()
        self.num_invariant = offsets[-1]
        self._ranks = []
        for j, fields in enumerate(self._layout.groups):
            basis = kinds[labels[fields[0]]][2]
            self.register_buffer(f"_basis_{j}", basis.clone(), persistent=False)
            coordinates = [c for i in fields for c in range(offsets[i], offsets[i + 1])]
            self.register_buffer(f"_coordinates_{j}", torch.tensor(coordinates, dtype=torch.long), persistent=False)
            self._ranks.append(basis.shape[1])

        if affine:
            self.weight = nn.Parameter(torch.ones(len(field_type)))
            self.bias = nn.Parameter(torch.zeros(self.num_invariant))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(self.num_invariant))
            self.register_buffer("running_var", torch.ones(len(field_type)))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batch counted."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics; weight 1, bias 0."""
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, field_type.size, *grid)`` -> same shape."""
        name = type(self).__name__
        _check_features(x, self.field_type, name)
        use_batch = self.training or not self.track_running_stats
        if use_batch and x.numel() // x.shape[1] < 2:
            raise ValueError(f"{name}: batch statistics need more than one value per field, got input shape "
                             f"{tuple(x.shape)}")
        update = self.training and self.track_running_stats
        factor = 0.0
        if update:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        out = []
        for j, block in enumerate(_split_groups(self, self._layout, x)):  # (B, k, d, *grid)
            fields, coordinates = getattr(self, f"_fields_{j}"), getattr(self, f"_coordinates_{j}")
            basis = getattr(self, f"_basis_{j}").to(x.dtype)  # (d, r)
            k, rank = block.shape[1], self._ranks[j]
            flat = block.reshape(*block.shape[:3], -1)  # (B, k, d, N)
            if use_batch:
                centred = flat
                if rank:
                    mean = flat.mean(dim=(0, 3)) @ basis  # (k, r) invariant coordinates
                    centred = flat - (mean @ basis.T)[None, :, :, None]
                var = centred.pow(2).mean(dim=(0, 2, 3))  # (k,)
                if update:
                    self._update(centred.detach(), mean.detach() if rank else None, var.detach(), basis, fields,
                                 coordinates, factor)
            else:
                mean = self.running_mean.index_select(0, coordinates).to(x.dtype).view(k, rank)
                centred = flat - (mean @ basis.T)[None, :, :, None] if rank else flat
                var = self.running_var.index_select(0, fields).to(x.dtype)
            scale = (var + self.eps).rsqrt()
            if self.affine:
                scale = scale * self.weight.index_select(0, fields).to(x.dtype)
            y = centred * scale[None, :, None, None]
            if self.affine and rank:
                shift = self.bias.index_select(0, coordinates).to(x.dtype).view(k, rank) @ basis.T
                y = y + shift[None, :, :, None]
            out.append(y.reshape(block.shape))
        return _merge_groups(self, out)

    @torch.no_grad()
    def _update(self, centred: Tensor, mean: Tensor | None, var: Tensor, basis: Tensor, fields: Tensor,
                coordinates: Tensor, factor: float) -> None:
        """Blend the batch statistics of one group into the running ones."""
        batch, _, dim, points = centred.shape
        n = batch * points
        if mean is not None:  # unbiased in the invariant directions, where the mean was estimated
            spread = torch.einsum("bkdn,dr->bkrn", centred, basis).pow(2).mean(dim=(0, 3)).sum(-1)
            var = var + spread / (max(n - 1, 1) * dim)
            old = self.running_mean.index_select(0, coordinates)
            self.running_mean.index_copy_(0, coordinates, old + factor * (mean.flatten().to(old.dtype) - old))
        old = self.running_var.index_select(0, fields)
        self.running_var.index_copy_(0, fields, old + factor * (var.to(old.dtype) - old))

    def extra_repr(self) -> str:
        return (f"{self.field_type!r}, eps={self.eps:g}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
