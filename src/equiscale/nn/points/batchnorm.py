"""e3nn's irreps-aware ``BatchNorm``: normalise each irrep copy by its norm (and centre the even scalars)."""
from __future__ import annotations

import math

import torch
from torch import nn

from equiscale import o3
from equiscale.errors import InvalidArgumentError

__all__ = ["BatchNorm"]


class BatchNorm(nn.Module):
    r"""Batch (or instance) normalisation of irreps features, equivariant for orthonormal irreps.

    For each irrep copy ``u`` of the input: even scalars (``0e``) are centred by their mean; then
    every copy is divided by :math:`\sqrt{n_u + \epsilon}`, where :math:`n_u` is its squared norm
    (``normalization='norm'``) or mean squared component (``'component'``), reduced over the
    samples by ``reduce`` (``'mean'`` or ``'max'``) and, in batch mode, averaged over the batch;
    with ``affine`` it is then multiplied by a learnt ``weight[u]`` and even scalars get a learnt
    ``bias``. Norms are rotation invariant and only even scalars are shifted, so the layer commutes
    with O(3).

    Batch mode (``instance=False``) uses the batch statistics in training, updates the buffers
    ``running_mean`` (one per even scalar) and ``running_var`` (one per irrep copy) with
    ``momentum``, and uses the buffers in eval. Instance mode normalises each batch element by its
    own statistics, in training and eval alike, and has no buffers. Same arguments, numbers and
    state-dict keys (``weight``, ``bias``, ``running_mean``, ``running_var``) as
    ``e3nn.nn.BatchNorm`` (0.6).

    Args:
        irreps: the irreps of the features.
        eps: added to :math:`n_u` before the square root.
        momentum: weight of the new batch statistics in the running averages.
        affine: learn ``weight`` (and ``bias``).
        reduce: ``'mean'`` or ``'max'``: how :math:`n_u` is reduced over the samples.
        instance: instance normalisation instead of batch normalisation.
        include_bias: with ``affine``, learn a bias for the even scalars.
        normalization: ``'component'`` or ``'norm'``.

    Shapes: ``(batch, ..., irreps.dim)`` -> the same; the axes between the first and the last are
    the samples of each batch element (e.g. the points of a cloud).
    """

    def __init__(
        self,
        irreps: o3.Irreps | str,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        reduce: str = "mean",
        instance: bool = False,
        include_bias: bool = True,
        normalization: str = "component",
    ) -> None:
        super().__init__()
        if not isinstance(reduce, str) or reduce not in ("mean", "max"):
            raise InvalidArgumentError(f"reduce needs to be 'mean' or 'max', got {reduce!r}")
        if normalization not in ("norm", "component"):
            raise InvalidArgumentError(f"normalization needs to be 'norm' or 'component', got {normalization!r}")
        if not eps >= 0:
            raise InvalidArgumentError(f"eps must be non-negative, got {eps!r}")
        self.irreps = o3.Irreps(irreps)
        self.eps, self.momentum, self.affine = eps, momentum, affine
        self.instance, self.include_bias = instance, include_bias
        self.reduce, self.normalization = reduce, normalization
        num_scalar = sum(mul for mul, ir in self.irreps if ir.is_scalar())
        num_features = self.irreps.num_irreps
        if instance:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
        else:
            self.register_buffer("running_mean", torch.zeros(num_scalar))
            self.register_buffer("running_var", torch.ones(num_features))
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            if include_bias:
                self.bias = nn.Parameter(torch.zeros(num_scalar))
        else:
            self.register_parameter("weight", None)
            if include_bias:
                self.register_parameter("bias", None)
        self._blocks = [(mul, ir.dim, ir.is_scalar()) for mul, ir in self.irreps]

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002  (e3nn's argument name)
        """Normalise.

        Args:
            input: features of shape ``(batch, ..., irreps.dim)``.

        Returns:
            the normalised features, same shape.
        """
        x = input
        if x.dim() < 2 or x.shape[-1] != self.irreps.dim:
            raise InvalidArgumentError(f"input must have shape (batch, ..., {self.irreps.dim}) for {self.irreps}, got {tuple(x.shape)}")
        shape = x.shape
        batch, samples = shape[0], math.prod(shape[1:-1])
        x = x.reshape(batch, samples, shape[-1])
        use_batch_stats = self.training and not self.instance
        new_means, new_vars, fields = [], [], []
        ix = i_scalar = i_feature = 0
        for mul, d, is_scalar in self._blocks:
            if mul == 0:
                continue
            field = x[:, :, ix : ix + mul * d].reshape(batch, samples, mul, d)
            ix += mul * d
            if is_scalar:
                if self.instance:
                    mean = field.mean(1).reshape(batch, 1, mul, 1)
                elif self.training:
                    mean = field.mean([0, 1]).reshape(mul)
                    new_means.append(self._rolled(self.running_mean[i_scalar : i_scalar + mul], mean))
                    mean = mean.reshape(1, 1, mul, 1)
                else:
                    mean = self.running_mean[i_scalar : i_scalar + mul].reshape(1, 1, mul, 1)
                field = field - mean
            if self.training or self.instance:
                squares = field.pow(2).sum(3) if self.normalization == "norm" else field.pow(2).mean(3)  # (batch, sample, mul)
                norm = squares.mean(1) if self.reduce == "mean" else squares.max(1).values  # (batch, mul)
                if use_batch_stats:
                    norm = norm.mean(0)  # (mul,)
                    new_vars.append(self._rolled(self.running_var[i_feature : i_feature + mul], norm))
            else:
                norm = self.running_var[i_feature : i_feature + mul]
            scale = (norm + self.eps).pow(-0.5)  # ([batch,] mul)
            if self.affine:
                scale = scale * self.weight[i_feature : i_feature + mul]
            field = field * scale.reshape(-1, 1, mul, 1)
            if self.affine and self.include_bias and is_scalar:
                field = field + self.bias[i_scalar : i_scalar + mul].reshape(mul, 1)
            if is_scalar:
                i_scalar += mul
            i_feature += mul
            fields.append(field.reshape(batch, samples, mul * d))
        if use_batch_stats:
            with torch.no_grad():
                if new_means:
                    self.running_mean.copy_(torch.cat(new_means))
                if new_vars:
                    self.running_var.copy_(torch.cat(new_vars))
        if not fields:
            return x.reshape(shape)
        return torch.cat(fields, dim=2).reshape(shape)

    def _rolled(self, current: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        return (1 - self.momentum) * current + self.momentum * update.detach()

    def __repr__(self) -> str:
        return f"{type(self).__name__} ({self.irreps}, eps={self.eps}, momentum={self.momentum})"
