"""Scalar activations on irreps features, normalised as in e3nn.

``normalize2mom(f)`` rescales ``f`` so that ``E[f(z)^2] = 1`` for ``z ~ N(0, 1)``: a layer made of
unit-variance inputs then keeps unit-variance outputs. The constant is estimated, as e3nn 0.6 does,
from one million float64 standard normal samples drawn on the CPU from a generator seeded with 0,
so the numbers match e3nn's; when it is within 1e-4 of 1 the function is left unscaled.

``Activation(irreps_in, acts)`` applies one (normalised) function per entry of ``irreps_in`` to the
scalars and passes the rest through (``None``).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from equiscale import o3
from equiscale.errors import InvalidArgumentError

__all__ = ["normalize2mom", "moment", "Activation", "activation_parity"]

_NUM_SAMPLES = 1_000_000


def _standard_normal_samples(f: Callable[[torch.Tensor], torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """e3nn's samples: one million float64 normals from a CPU generator seeded 0, on ``f``'s device."""
    device = None
    if isinstance(f, nn.Module):
        device = next((p.device for p in f.parameters()), None)
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(_NUM_SAMPLES, generator=generator, dtype=torch.float64)
    return z.to(device=device, dtype=dtype)


def _inverse_root_second_moment(f: Callable[[torch.Tensor], torch.Tensor]) -> float:
    z = _standard_normal_samples(f, torch.float64)
    with torch.no_grad():
        try:
            return f(z).pow(2).mean().pow(-0.5).item()
        except RuntimeError:
            # A module that cannot take float64 with its parameters' dtype (torch's PReLU, where
            # e3nn fails): sample in that dtype instead.
            dtype = next((p.dtype for p in f.parameters() if p.is_floating_point()), None) if isinstance(f, nn.Module) else None
            if dtype is None or dtype == torch.float64:
                raise
            return f(z.to(dtype)).pow(2).mean().pow(-0.5).item()


def moment(
    f: Callable[[torch.Tensor], torch.Tensor], n: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """The n-th moment ``E[f(z)^n]`` of ``f`` under ``z ~ N(0, 1)``, estimated as e3nn does.

    Args:
        f: an elementwise function.
        n: the power.
        dtype: the dtype of the samples (default: torch's default dtype).
        device: where to evaluate ``f`` (default: the CPU). The samples are always drawn on the
            CPU, so the estimate is the same on every device (e3nn draws them on ``device``).

    Returns:
        a 0-dim tensor.
    """
    dtype = torch.get_default_dtype() if dtype is None else dtype
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(_NUM_SAMPLES, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    return f(z).pow(n).mean()


class normalize2mom(nn.Module):  # noqa: N801  (the e3nn name)
    """``x -> c f(x)`` with ``c = E[f(z)^2]^{-1/2}``, ``z ~ N(0, 1)`` (``c`` is the attribute ``cst``).

    Args:
        f: an elementwise function (a module's parameters fix the device and dtype it is sampled in).
        dtype: unused, as in e3nn (the constant is estimated in float64).
        device: unused, as in e3nn's signature (the device is taken from ``f``'s parameters).

    Shapes: any ``(...)`` -> ``(...)``; ``f`` must act elementwise.
    """

    def __init__(
        self, f: Callable[[torch.Tensor], torch.Tensor], dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> None:
        super().__init__()
        if not callable(f):
            raise InvalidArgumentError(f"f must be a callable elementwise function, got {f!r}")
        cst = _inverse_root_second_moment(f)
        if not math.isfinite(cst):
            raise InvalidArgumentError("f has second moment 0 under a standard normal: cannot normalise it")
        self.f = f
        self.cst = cst
        self.is_identity = abs(self.cst - 1.0) < 1e-4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.f(x)
        return y if self.is_identity else y * self.cst


def activation_parity(f: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """1 if ``f`` is even, -1 if odd, 0 if neither.

    Checked as e3nn does: on 256 points of [0, 10] in torch's default dtype (or the dtype of
    ``f``'s parameters), to 1e-5.

    Args:
        f: an elementwise function.

    Returns:
        1, -1 or 0.
    """
    dtype, device = torch.get_default_dtype(), None
    if isinstance(f, nn.Module):
        dtype = next((p.dtype for p in f.parameters() if p.is_floating_point()), dtype)
        device = next((p.device for p in f.parameters()), None)
    x = torch.linspace(0.0, 10.0, 256, dtype=dtype, device=device)
    with torch.no_grad():
        plus, minus = f(x), f(-x)
    if (plus - minus).abs().max() < 1e-5:
        return 1
    if (plus + minus).abs().max() < 1e-5:
        return -1
    return 0


class Activation(nn.Module):
    """Apply ``acts[k]`` (normalised by :class:`normalize2mom`) to the k-th entry of ``irreps_in``.

    Entries with ``None`` pass through unchanged; an activation may only act on scalars (l = 0).
    An odd scalar (``0o``) stays odd under an odd function, becomes even under an even one, and
    raises :class:`~equiscale.errors.InvalidArgumentError` under a function of no parity.
    ``irreps_out`` holds the resulting irreps. Same arguments, numbers and state-dict keys
    (``acts.K.f...`` for an activation module with parameters) as ``e3nn.nn.Activation`` (0.6).

    Args:
        irreps_in: the irreps of the input.
        acts: one function (or None) per entry of ``irreps_in``.

    Shapes: ``(..., irreps_in.dim, ...)`` -> ``(..., irreps_out.dim, ...)`` (same size), the
    irreps along ``dim`` (default -1) of the forward.
    """

    def __init__(self, irreps_in: o3.Irreps | str, acts: Sequence[Callable | None]) -> None:
        super().__init__()
        irreps_in = o3.Irreps(irreps_in)
        acts = list(acts)
        if len(irreps_in) != len(acts):
            raise InvalidArgumentError(f"acts has {len(acts)} entries but irreps_in = {irreps_in} has {len(irreps_in)}")
        out, modules = [], []
        for (mul, ir), act in zip(irreps_in, acts):
            if act is None:
                out.append((mul, ir))
                modules.append(nn.Identity())
                continue
            if ir.l != 0:
                raise InvalidArgumentError(f"Activation: cannot apply an activation function to the non-scalar {ir} of irreps_in")
            modules.append(normalize2mom(act))
            parity = ir.p
            if ir.p == -1:
                parity = activation_parity(modules[-1])
                if parity == 0:
                    raise InvalidArgumentError(f"Activation: odd scalars {mul}x{ir} need an even or odd function, {act} is neither")
            out.append((mul, o3.Irrep(0, parity)))
        self.irreps_in = irreps_in
        self.irreps_out = o3.Irreps(out)
        self.acts = nn.ModuleList(modules)
        self._active = [a is not None for a in acts]
        self._slices = [(mul * ir.dim) for mul, ir in irreps_in]

    def forward(self, features: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Apply the activations.

        Args:
            features: a tensor whose axis ``dim`` holds ``irreps_in.dim`` components.
            dim: the axis of the irreps (e3nn's argument).

        Returns:
            a tensor of the same shape.
        """
        if features.dim() == 0 or features.shape[dim] != sum(self._slices):
            raise InvalidArgumentError(
                f"features must have {sum(self._slices)} components along dim {dim}, got shape {tuple(features.shape)}"
            )
        if not any(self._active):
            return features
        if len(self.acts) == 1:  # one block (e.g. 32x0e): no split and cat
            return self.acts[0](features)
        parts = []
        for act, active, chunk in zip(self.acts, self._active, features.split(self._slices, dim=dim)):
            parts.append(act(chunk) if active else chunk)
        return torch.cat(parts, dim=dim)

    def __repr__(self) -> str:
        marks = "".join("x" if a else " " for a in self._active)
        return f"{type(self).__name__} [{marks}] ({self.irreps_in} -> {self.irreps_out})"
