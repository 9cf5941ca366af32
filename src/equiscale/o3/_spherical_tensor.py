"""``SphericalTensor``: the irreps of a function on the sphere (``e3nn.io.SphericalTensor``).

A signal ``f(x) = sum_{l <= lmax} A^l . Y^l(x)`` is stored as its coefficients ``A`` in
``1x0 + 1x1 + ... + 1x lmax``; parity acts as ``(P f)(x) = p_val f(p_arg x)``, so degree ``l``
has parity ``p_val * p_arg**l``. Same methods and numbers as e3nn 0.6; the harmonics are
evaluated by degree (so any ``p_val``/``p_arg`` works, where e3nn refuses odd ``p_val``), and
grids are built in the signal's dtype and device (float64 signals stay float64-accurate).
"""
from __future__ import annotations

from collections import namedtuple
from math import pi
from typing import Dict, List, Optional, Tuple

import torch

from equiscale.errors import InvalidArgumentError
from equiscale.o3._irreps import Irreps
from equiscale.o3._rotation import angles_to_matrix
from equiscale.o3._spherical_harmonics import spherical_harmonics

__all__ = ["SphericalTensor"]

GridSignal = namedtuple("Return", "grid, values")


def _peaks_2d(f: torch.Tensor) -> List[Tuple[int, int]]:
    """Grid points that are a strict local maximum (scipy's ``find_peaks``) along both axes."""
    from scipy.signal import find_peaks

    a = f.detach().cpu().numpy()
    rows = {(i, int(j)) for i in range(a.shape[0]) for j in find_peaks(a[i, :])[0]}
    cols = {(int(i), j) for j in range(a.shape[1]) for i in find_peaks(a[:, j])[0]}
    return sorted(rows & cols)


class SphericalTensor(Irreps):
    """Irreps ``1x0 + ... + 1x lmax`` of a signal on the sphere, with its conversions.

    ``SphericalTensor(3, 1, -1)`` is ``1x0e+1x1o+1x2e+1x3o`` (the parity of the spherical
    harmonics); ``SphericalTensor(3, 1, 1)`` is ``1x0e+1x1e+1x2e+1x3e``.

    Args:
        lmax: largest degree.
        p_val: ``+1`` or ``-1``, the parity of the values.
        p_arg: ``+1`` or ``-1``, the parity of the argument.
    """

    def __new__(cls, lmax: int, p_val: int, p_arg: int) -> "SphericalTensor":
        if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 0:
            raise InvalidArgumentError(f"lmax: expected a non-negative integer, got {lmax!r}")
        for name, p in (("p_val", p_val), ("p_arg", p_arg)):
            if p not in (1, -1):
                raise InvalidArgumentError(f"{name}: expected +1 or -1, got {p!r}")
        ret = super().__new__(cls, [(1, (l, p_val * p_arg ** l)) for l in range(lmax + 1)])
        ret._args = (lmax, p_val, p_arg)
        return ret

    def __reduce__(self):  # pickle and copy rebuild from the arguments
        return (self.__class__, self._args)

    def _harmonics(self, x: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(list(range(self.lmax + 1)), x, True)

    def with_peaks_at(self, vectors: torch.Tensor, values: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The signal of least norm whose value at each ``r_i / |r_i|`` is ``|r_i|`` (or ``values``).

        Args:
            vectors: ``(N, 3)`` points ``r_i``.
            values: ``(N,)`` values at the points (default ``|r_i|``); zero values are dropped.

        Returns:
            ``(self.dim,)``.
        """
        if values is not None:
            vectors, values = torch.broadcast_tensors(vectors, values[..., None])
            values = values[..., 0]
        if vectors.numel() == 0:
            return torch.zeros(vectors.shape[:-2] + (self.dim,), dtype=vectors.dtype, device=vectors.device)
        if self[0].ir.p != 1:
            raise InvalidArgumentError("with_peaks_at: p_val must be +1 (the peak values are radii, which are even)")
        if vectors.dim() != 2 or vectors.shape[1] != 3:
            raise InvalidArgumentError(f"vectors: expected shape (N, 3), got {tuple(vectors.shape)}")
        if values is None:
            values = vectors.norm(dim=1)
        keep = values != 0
        vectors, values = vectors[keep], values[keep]
        y = self._harmonics(vectors)  # (N, dim)
        gram = y @ y.T
        solution = torch.linalg.lstsq(gram, values).solution.reshape(-1)
        residual = (values - gram @ solution).abs().max()
        if residual >= 1e-5 * values.abs().max():
            raise InvalidArgumentError(f"with_peaks_at: lmax={self.lmax} cannot take these {len(values)} values at "
                                       f"these points (residual {residual.item():.2e}); use fewer points or a larger lmax")
        return solution @ y

    def sum_of_diracs(self, positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Band-limited sum of Dirac deltas ``sum_i v_i delta(r_i / |r_i|)``.

        Args:
            positions: ``(..., N, 3)``.
            values: ``(..., N)``; broadcast with ``positions``.

        Returns:
            ``(..., self.dim)``: ``4 pi / (lmax + 1)^2 * sum_i v_i Y(r_i)``.
        """
        positions, values = torch.broadcast_tensors(positions, values[..., None])
        values = values[..., 0]
        if positions.numel() == 0:
            return torch.zeros(values.shape[:-1] + (self.dim,), dtype=values.dtype, device=values.device)
        y = self._harmonics(positions)
        return 4 * pi / (self.lmax + 1) ** 2 * (y * values[..., None]).sum(-2)

    def from_samples_on_s2(self, positions: torch.Tensor, values: torch.Tensor, res: int = 100) -> torch.Tensor:
        """Coefficients of the signal equal, at each grid point, to the value of the nearest sample.

        Args:
            positions: ``(..., N, 3)`` sample directions.
            values: ``(..., N)`` sample values.
            res: resolution of the quadrature grid (``FromS2Grid``, integral normalisation).

        Returns:
            ``(..., self.dim)``.
        """
        from equiscale.o3._s2grid import FromS2Grid

        positions, values = torch.broadcast_tensors(positions, values[..., None])
        values = values[..., 0]
        if positions.numel() == 0:
            return torch.zeros(values.shape[:-1] + (self.dim,), dtype=values.dtype, device=values.device)
        positions = torch.nn.functional.normalize(positions, dim=-1)
        size, n = positions.shape[:-2], positions.shape[-2]
        positions, values = positions.reshape(-1, n, 3), values.reshape(-1, n)
        s2 = FromS2Grid(res=res, lmax=self.lmax, normalization="integral", dtype=values.dtype, device=values.device)
        nearest = torch.cdist(s2.grid.reshape(1, -1, 3), positions).argmin(2)  # (batch, grid)
        sampled = values.gather(1, nearest).reshape(*size, s2.res_beta, s2.res_alpha)
        return s2(sampled)

    def norms(self, signal: torch.Tensor) -> torch.Tensor:
        """Norm of each degree's coefficients.

        Args:
            signal: ``(..., self.dim)``.

        Returns:
            ``(..., lmax + 1)``.
        """
        return torch.stack([signal[..., s].norm(dim=-1) for s in self.slices()], dim=-1)

    def signal_xyz(self, signal: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """The signal at the directions ``r / |r|``.

        Args:
            signal: ``(*A, self.dim)``.
            r: ``(*B, 3)``.

        Returns:
            ``(*A, *B)``.
        """
        y = self._harmonics(r).reshape(-1, self.dim)
        out = signal.reshape(-1, self.dim) @ y.T
        return out.reshape(signal.shape[:-1] + r.shape[:-1])

    def signal_on_grid(self, signal: torch.Tensor, res: int = 100, normalization: str = "integral"):
        """The signal on a ``ToS2Grid`` grid.

        Args:
            signal: ``(..., self.dim)``.
            res: grid resolution.
            normalization: ``ToS2Grid``'s normalisation.

        Returns:
            ``(grid (res_beta, res_alpha, 3), values (..., res_beta, res_alpha))``, a namedtuple.
        """
        from equiscale.o3._s2grid import ToS2Grid

        s2 = ToS2Grid(lmax=self.lmax, res=res, normalization=normalization, dtype=signal.dtype, device=signal.device)
        return GridSignal(s2.grid, s2(signal))

    def plotly_surface(self, signals: torch.Tensor, centers: Optional[torch.Tensor] = None, res: int = 100,
                       radius: bool = True, relu: bool = False, normalization: str = "integral") -> List[Dict]:
        """Keyword dictionaries for ``plotly.graph_objects.Surface``, one per signal.

        Args:
            signals: ``(..., self.dim)``.
            centers: ``(..., 3)`` centres of the surfaces (default the origin).
            res: grid resolution.
            radius: scale each point by ``|f|``.
            relu: plot ``relu(f)``.
            normalization: ``ToS2Grid``'s normalisation.

        Returns:
            ``[{"x", "y", "z", "surfacecolor"}, ...]`` of numpy arrays.
        """
        signals = signals.reshape(-1, self.dim)
        centers = [None] * len(signals) if centers is None else centers.reshape(-1, 3)
        traces = []
        for signal, center in zip(signals, centers):
            r, f = self.plot(signal, center, res, radius, relu, normalization)
            traces.append({"x": r[:, :, 0].numpy(), "y": r[:, :, 1].numpy(), "z": r[:, :, 2].numpy(),
                           "surfacecolor": f.numpy()})
        return traces

    def plot(self, signal: torch.Tensor, center: Optional[torch.Tensor] = None, res: int = 100, radius: bool = True,
             relu: bool = False, normalization: str = "integral") -> Tuple[torch.Tensor, torch.Tensor]:
        """A closed surface of the signal for plotting.

        Args:
            signal: ``(self.dim,)``.
            center: ``(3,)`` shift of the surface.
            res: grid resolution.
            radius: scale each point by ``|f|``.
            relu: plot ``relu(f)``.
            normalization: ``ToS2Grid``'s normalisation.

        Returns:
            ``(r (res_beta, res_alpha + 1, 3), f (res_beta, res_alpha + 1))``: the poles set to
            the pole points and their mean value, the alpha seam closed.
        """
        if signal.dim() != 1:
            raise InvalidArgumentError(f"signal: expected shape ({self.dim},), got {tuple(signal.shape)}")
        r, f = self.signal_on_grid(signal, res, normalization)
        f = f.relu() if relu else f
        r, f = r.clone(), f.clone()
        r[0] = r.new_tensor([0.0, 1.0, 0.0])
        r[-1] = r.new_tensor([0.0, -1.0, 0.0])
        f[0] = f[0].mean()
        f[-1] = f[-1].mean()
        r = torch.cat([r, r[:, :1]], dim=1)
        f = torch.cat([f, f[:, :1]], dim=1)
        if radius:
            r = r * f.abs().unsqueeze(-1)
        if center is not None:
            r = r + center
        return r, f

    def find_peaks(self, signal: torch.Tensor, res: int = 100) -> Tuple[torch.Tensor, torch.Tensor]:
        """Local maxima of the signal on the sphere.

        Peaks are searched on two grids (the second rotated so that no peak sits on a pole of
        both), and merged.

        Args:
            signal: ``(self.dim,)``.
            res: grid resolution.

        Returns:
            ``(positions (P, 3), values (P,))``, the first grid's peaks in grid order, then the
            second's (e3nn lists the same peaks in the order of a Python set).
        """
        x1, f1 = self.signal_on_grid(signal, res)
        rot = angles_to_matrix(*torch.full((3,), pi / 2, dtype=signal.dtype, device=signal.device))
        x2, f2 = self.signal_on_grid(self.D_from_matrix(rot) @ signal, res)
        x2 = torch.einsum("ij,baj->bai", rot.T, x2)
        found = []
        for x, f in ((x1, f1), (x2, f2)):
            ij = _peaks_2d(f)
            rows = torch.tensor([i for i, _ in ij], dtype=torch.long, device=f.device)
            cols = torch.tensor([j for _, j in ij], dtype=torch.long, device=f.device)
            found.append((x[rows, cols], f[rows, cols]))
        (x1p, f1p), (x2p, f2p) = found
        new = (torch.cdist(x1p, x2p) < 2 * pi / res).sum(1) == 0
        return torch.cat([x1p[new], x2p]), torch.cat([f1p[new], f2p])
