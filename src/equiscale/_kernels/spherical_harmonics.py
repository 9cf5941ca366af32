"""Python side of the compiled spherical harmonics: autograd (to any order) and fake tensors.

Operators (``csrc/spherical_harmonics.cpp``), for ``x`` of shape ``(N, 3)`` (float32/float64, any
strides) and ``D = (lmax + 1)^2``:

* ``torch.ops.equiscale.spherical_harmonics(x, lmax, normalize, normalization)`` -> ``(N, D)``,
  all degrees ``0..lmax`` in e3nn's order and numbers (see :mod:`equiscale.o3._sh_coefficients`);
* ``torch.ops.equiscale.spherical_harmonics_backward(grad, x, lmax, normalize, normalization)``
  -> ``dL/dx`` ``(N, 3)`` for ``dL/dY = grad`` ``(N, D)``.

The forward's backward is the compiled backward op; that op's own backward (needed when forces,
``-dE/dx``, are trained) is taken by autograd through the plain-op PyTorch twin
(:func:`equiscale.o3._sh_recurrence.spherical_harmonics_plain`), so every order of derivative
exists and the first two orders run compiled. Fake implementations let ``torch.compile`` and
``torch.export`` trace through both ops.
"""
from __future__ import annotations

from typing import Sequence

import torch

from equiscale.o3._sh_recurrence import spherical_harmonics_plain

_FORWARD = "equiscale::spherical_harmonics"
_BACKWARD = "equiscale::spherical_harmonics_backward"


def spherical_harmonics(ls: Sequence[int], x: torch.Tensor, normalize: bool, normalization: str) -> torch.Tensor:
    """Harmonics of the degrees ``ls`` (e3nn order, repeats allowed) at ``x`` ``(N, 3)`` -> ``(N, sum(2l+1))``.

    The caller checks :func:`equiscale._kernels.use_kernels` first.
    """
    lmax = max(ls)
    out = torch.ops.equiscale.spherical_harmonics(x, lmax, normalize, normalization)
    if list(ls) != list(range(lmax + 1)):
        rows = [l * l + i for l in ls for i in range(2 * l + 1)]
        out = out[:, rows]
    return out


def _fake_forward(x: torch.Tensor, lmax: int, normalize: bool, normalization: str) -> torch.Tensor:
    return x.new_empty((x.shape[0], (lmax + 1) ** 2))


def _fake_backward(grad: torch.Tensor, x: torch.Tensor, lmax: int, normalize: bool,
                   normalization: str) -> torch.Tensor:
    return x.new_empty((x.shape[0], 3))


def _setup_forward(ctx, inputs, output) -> None:
    x, lmax, normalize, normalization = inputs
    ctx.save_for_backward(x)
    ctx.config = (lmax, normalize, normalization)


def _backward_of_forward(ctx, grad: torch.Tensor):
    (x,) = ctx.saved_tensors
    gx = torch.ops.equiscale.spherical_harmonics_backward(grad.contiguous(), x, *ctx.config)
    return gx, None, None, None


def _setup_backward(ctx, inputs, output) -> None:
    grad, x, lmax, normalize, normalization = inputs
    ctx.save_for_backward(grad, x)
    ctx.config = (lmax, normalize, normalization)


def _backward_of_backward(ctx, ggx: torch.Tensor):
    """Through the PyTorch twin: ``gx(grad, x) = J(x)^T grad``, differentiated by autograd."""
    grad, x = ctx.saved_tensors
    lmax, normalize, normalization = ctx.config
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        gd = grad.detach().requires_grad_(True)
        xd = x.detach().requires_grad_(True)
        y = spherical_harmonics_plain(list(range(lmax + 1)), xd, normalize, normalization)
        d_grad = d_x = None
        if y.requires_grad:  # not for lmax = 0 (a constant)
            (gx,) = torch.autograd.grad(y, xd, gd, create_graph=True, allow_unused=True)
            if gx is not None and gx.requires_grad:
                d_grad, d_x = torch.autograd.grad(gx, (gd, xd), ggx, create_graph=create_graph, allow_unused=True)
    d_grad = torch.zeros_like(grad) if d_grad is None else d_grad
    d_x = torch.zeros_like(x) if d_x is None else d_x
    return d_grad, d_x, None, None, None


def register() -> None:
    """Attach fake implementations and autograd to the operators (called once by ``load()``)."""
    torch.library.register_fake(_FORWARD, _fake_forward)
    torch.library.register_fake(_BACKWARD, _fake_backward)
    torch.library.register_autograd(_FORWARD, _backward_of_forward, setup_context=_setup_forward)
    torch.library.register_autograd(_BACKWARD, _backward_of_backward, setup_context=_setup_backward)
