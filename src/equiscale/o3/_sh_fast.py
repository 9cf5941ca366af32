"""Fast kernel: one fused multiply-add per harmonic, component-major, with a hand-written backward.

Eager torch is cheap on long contiguous vectors and expensive per op, so the kernel computes a
component-major block ``R`` of shape ``(D, n)`` (one contiguous row per output ``(l, m)``, e3nn
order) with the scaled recurrence of :func:`equiscale.o3._sh_coefficients.scaled_recurrence`:

    R_mm = T_m (sectoral rows: a complex rotation per m),  R_(m+1)m = y R_mm,
    R_lm = r^2 R_(l-2)m + v_lm y R_(l-1)m            (r^2 = 1 is skipped on the unit sphere).

The rows ``(l, -m)`` and ``(l, +m)`` obey the same recurrence, so each step runs on both at once
through one strided view: about ``lmax^2 / 2 + 3 lmax`` ops in all. One last op scales every row
to its normalisation and writes the block transposed into the ``(N, D)`` output. The recurrence
is the stable one (forward in ``l`` at fixed ``m``), so the kernel is accurate for every degree.

On CPU the points are processed in chunks whose ``R`` block (about 4 MB) stays in the last-level
cache and is reused from chunk to chunk: the transposing write then reads from cache, and no
buffer the size of the output is allocated (fresh large buffers cost page faults on every call).

The backward runs the adjoint recurrence in reverse over the same views (rows recomputed chunk by
chunk, so autograd keeps only ``x``), then the chain rule through ``u = x / max(|x|, eps)``. It
is not itself differentiable: when a second derivative is asked for (``create_graph=True``) the
vector-Jacobian product is taken by autograd through the plain-op recurrence of
:mod:`equiscale.o3._sh_recurrence` instead.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, Optional, Tuple

import torch

from equiscale.o3._sh_coefficients import scaled_recurrence
from equiscale.o3._sh_recurrence import spherical_harmonics_plain

EPS = 1e-12  # torch.nn.functional.normalize's default (how e3nn normalises the input)
_CHUNK_BYTES = 4 * 1024 * 1024  # size of the R block kept in cache on CPU

Views = Dict[Tuple[int, int], torch.Tensor]


@lru_cache(maxsize=64)
def _row_scale(lmax: int, normalization: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(D, 1)`` float64-built factors ``Y_lm = scale * R_lm``, cast to the working dtype."""
    _, scale = scaled_recurrence(lmax, normalization)
    return torch.tensor(scale, dtype=torch.float64).to(dtype=dtype, device=device)[:, None]


@lru_cache(maxsize=64)
def _selection(ls: Tuple[int, ...], device: torch.device) -> Optional[torch.Tensor]:
    """Rows of the full ``(lmax+1)^2`` block that make the output, or None if it is all of them."""
    if ls == tuple(range(max(ls) + 1)):
        return None
    return torch.tensor([l * l + i for l in ls for i in range(2 * l + 1)], dtype=torch.long, device=device)


def _chunk(n: int, rows: int, x: torch.Tensor) -> int:
    """Points per chunk: the whole batch off CPU, else enough to fill about ``_CHUNK_BYTES``."""
    if x.device.type != "cpu":
        return max(n, 1)
    c = _CHUNK_BYTES // (rows * x.element_size())
    return max(1, min(n, max(1024, c // 64 * 64)))


class _Block:
    """A reusable ``(D, c)`` block with its ``(l, +-m)`` pair views (built once, used per chunk).

    The row stride is padded past ``c`` so that rows are not a power-of-two apart (cache aliasing).
    """

    def __init__(self, lmax: int, c: int, like: torch.Tensor) -> None:
        self.lmax = lmax
        self.store = like.new_empty(((lmax + 1) ** 2, c + 16))
        self.c = c
        self.full = self._cut(c)

    def _cut(self, k: int) -> Tuple[torch.Tensor, Views]:
        block = self.store[:, :k]
        ld = self.store.stride(0)
        views: Views = {}
        for l in range(self.lmax + 1):
            row = l * l + l
            views[(l, 0)] = block[row:row + 1]
            for m in range(1, l + 1):  # rows (l, -m) and (l, +m), 2m apart
                views[(l, m)] = block.as_strided((2, k), (2 * m * ld, 1), block.storage_offset() + (row - m) * ld)
        return block, views

    def get(self, k: int) -> Tuple[torch.Tensor, Views]:
        return self.full if k == self.c else self._cut(k)


def _inputs(x: torch.Tensor, normalize: bool):
    """``u`` (``x / max(|x|, eps)`` or ``x``) as a contiguous ``(3, N)`` block, ``|u|^2``, ``1 / max(|x|, eps)``.

    The components are copied once into a contiguous block (a transposing elementwise op, which
    torch runs in parallel, unlike ``copy_``'s transpose path). With ``normalize``, ``|u|^2`` is
    None when every ``|x| > eps`` (then ``|u| = 1`` and the recurrence skips its ``r^2`` factor);
    inputs with ``|x| <= eps`` have ``u = x / eps`` inside the ball, where the homogeneous
    polynomials are evaluated (as e3nn does).
    """
    u = x.new_empty((3, x.shape[0]))
    torch.mul(x.t(), 1.0, out=u)
    X, Y, Z = u
    r2 = X * X
    r2.addcmul_(Y, Y).addcmul_(Z, Z)
    if not normalize:
        return u, r2, None
    inv = r2.clamp_min(EPS * EPS).rsqrt_()
    u.mul_(inv)
    if bool(inv.max() < 1.0 / EPS):
        return u, None, inv
    return u, r2.mul_(inv).mul_(inv), inv


def _rows(block: torch.Tensor, P: Views, X, Y, Z, r2, lmax: int, v: dict) -> None:
    """Fill ``block`` ``(D, k)`` with the rows ``R`` at the points ``(X, Y, Z)`` (and ``r^2``)."""
    block[0].fill_(1.0)
    if lmax >= 1:
        block[1].copy_(X)  # (1, -1): Im (z + i x) = x
        block[3].copy_(Z)  # (1, +1): Re (z + i x) = z
    for m in range(2, lmax + 1):  # (S_m, C_m) = (S, C)_(m-1) * (z + i x)
        prev, cur = P[(m - 1, m - 1)], P[(m, m)]
        torch.mul(prev, Z, out=cur)
        cur[0].addcmul_(prev[1], X)
        cur[1].addcmul_(prev[0], X, value=-1.0)
    for m in range(lmax):
        torch.mul(P[(m, m)], Y, out=P[(m + 1, m)])
        for l in range(m + 2, lmax + 1):
            if r2 is None:  # on the unit sphere
                torch.addcmul(P[(l - 2, m)], P[(l - 1, m)], Y, value=v[(l, m)], out=P[(l, m)])
            else:
                torch.mul(P[(l - 2, m)], r2, out=P[(l, m)])
                P[(l, m)].addcmul_(P[(l - 1, m)], Y, value=v[(l, m)])


def _forward(x: torch.Tensor, ls: Tuple[int, ...], normalize: bool, normalization: str) -> torch.Tensor:
    lmax, n = max(ls), x.shape[0]
    v, _ = scaled_recurrence(lmax, normalization)
    u, r2, _ = _inputs(x, normalize)
    scale = _row_scale(lmax, normalization, x.dtype, x.device)
    rows = _selection(ls, x.device)
    if rows is not None:
        scale = scale.index_select(0, rows)
    out = x.new_empty((n, scale.shape[0]))
    c = _chunk(n, (lmax + 1) ** 2, x)
    work = _Block(lmax, c, x)
    for s in range(0, n, c):
        e = min(n, s + c)
        block, P = work.get(e - s)
        X, Y, Z = u[:, s:e]
        _rows(block, P, X, Y, Z, None if r2 is None else r2[s:e], lmax, v)
        picked = block if rows is None else block.index_select(0, rows)
        torch.mul(picked, scale, out=out[s:e].t())  # normalise and transpose in one pass
    return out


def _adjoint(g: torch.Tensor, G: Views, P: Views, X, Y, Z, r2, gu, g_r2, pairs, lmax: int, v: dict) -> None:
    """Back-propagate ``g`` (dL/dR, consumed) to ``gu = dL/du`` and ``g_r2 = dL/d r^2`` (accumulated).

    ``pairs`` is a ``(3, 2, k)`` scratch for the per-pair sums of the y, z and r^2 terms.
    """
    gx, gy, gz = gu
    pairs.zero_()
    gy2, gz2, g_r22 = pairs
    for m in range(lmax):  # tesseral chains, l descending
        gy_m, g_r2_m = (gy[None], g_r2[None]) if m == 0 else (gy2, g_r22)
        for l in range(lmax, m + 1, -1):
            gl, coef = G[(l, m)], v[(l, m)]
            G[(l - 1, m)].addcmul_(gl, Y, value=coef)
            gy_m.addcmul_(gl, P[(l - 1, m)], value=coef)
            if r2 is None:
                G[(l - 2, m)].add_(gl)
            else:
                G[(l - 2, m)].addcmul_(gl, r2)
                g_r2_m.addcmul_(gl, P[(l - 2, m)])
        gl = G[(m + 1, m)]
        G[(m, m)].addcmul_(gl, Y)
        gy_m.addcmul_(gl, P[(m, m)])
    for m in range(lmax, 1, -1):  # sectoral chain: (S_m, C_m) = (S z + C x, C z - S x)_(m-1)
        gm, prev, gprev = G[(m, m)], P[(m - 1, m - 1)], G[(m - 1, m - 1)]
        gprev.addcmul_(gm, Z)
        gprev[0].addcmul_(gm[1], X, value=-1.0)
        gprev[1].addcmul_(gm[0], X)
        gz2.addcmul_(gm, prev)  # S_m' S_(m-1) + C_m' C_(m-1)
        gx.addcmul_(gm[0], prev[1]).addcmul_(gm[1], prev[0], value=-1.0)
    gy.add_(gy2[0]).add_(gy2[1])
    gz.add_(gz2[0]).add_(gz2[1])
    if r2 is not None:
        g_r2.add_(g_r22[0]).add_(g_r22[1])
    if lmax >= 1:
        gx.add_(g[1])
        gz.add_(g[3])


def _backward(x: torch.Tensor, grad: torch.Tensor, ls: Tuple[int, ...], normalize: bool,
              normalization: str) -> torch.Tensor:
    """``dL/dx`` ``(N, 3)`` for ``dL/dY = grad`` ``(N, D)``: the adjoint of :func:`_forward`."""
    lmax, n = max(ls), x.shape[0]
    v, _ = scaled_recurrence(lmax, normalization)
    u, r2, inv = _inputs(x, normalize)
    scale = _row_scale(lmax, normalization, x.dtype, x.device)
    rows = _selection(ls, x.device)
    c = _chunk(n, 2 * (lmax + 1) ** 2, x)
    work, grads = _Block(lmax, c, x), _Block(lmax, c, x)
    gu = torch.zeros_like(u)  # dL/du, (3, N)
    g_r2 = torch.zeros_like(u[0])
    pairs = x.new_empty((3, 2, c))
    for s in range(0, n, c):
        e = min(n, s + c)
        (block, P), (g, G) = work.get(e - s), grads.get(e - s)
        X, Y, Z = u[:, s:e]
        r2_chunk = None if r2 is None else r2[s:e]
        _rows(block, P, X, Y, Z, r2_chunk, lmax, v)
        if rows is None:
            torch.mul(grad[s:e].t(), scale, out=g)  # scale and transpose in one pass
        else:
            g.zero_().index_add_(0, rows, grad[s:e].t() * scale.index_select(0, rows))
        _adjoint(g, G, P, X, Y, Z, r2_chunk, gu[:, s:e], g_r2[s:e], pairs[:, :, :e - s], lmax, v)

    if r2 is not None:  # r^2 = |u|^2 (or |x|^2): d r^2 / du = 2 u
        gu.addcmul_(u, g_r2, value=2.0)
    out = x.new_empty((n, 3))
    if not normalize:
        torch.mul(gu, 1.0, out=out.t())
        return out
    # u = x * inv with inv = 1 / max(|x|, eps): project out the radial part where |x| > eps
    radial = (u * gu).sum(0)
    if r2 is not None:  # some |x| <= eps: there u = x / eps, no projection
        radial.masked_fill_(inv >= 1.0 / EPS, 0.0)
    gu.addcmul_(u, radial, value=-1.0)
    torch.mul(gu, inv, out=out.t())
    return out


def _differentiable_vjp(x: torch.Tensor, grad: torch.Tensor, ls: Tuple[int, ...], normalize: bool,
                        normalization: str) -> torch.Tensor:
    """The same vector-Jacobian product built by autograd, itself differentiable (double backward)."""
    with torch.enable_grad():
        xd = x if x.requires_grad else x.detach().requires_grad_(True)
        y = spherical_harmonics_plain(ls, xd, normalize, normalization)
        if not y.requires_grad:  # l = 0 only: a constant
            return torch.zeros_like(x)
        (gx,) = torch.autograd.grad(y, xd, grad, create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if gx is None else gx


class _SphericalHarmonicsFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, ls, normalize, normalization):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.config = (ls, normalize, normalization)
        return _forward(x, ls, normalize, normalization)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward is needed
            return _differentiable_vjp(x, grad, *ctx.config), None, None, None
        with torch.no_grad():
            return _backward(x, grad, *ctx.config), None, None, None


@torch.compiler.disable
def spherical_harmonics_kernel(ls: Tuple[int, ...], x: torch.Tensor, normalize: bool,
                               normalization: str) -> torch.Tensor:
    """Harmonics of the degrees ``ls`` (e3nn order) at ``x`` ``(N, 3)`` -> ``(N, sum(2l+1))``.

    Opaque to ``torch.compile`` (views, ``out=`` ops and a data-dependent branch): compiled code
    uses :func:`equiscale.o3._sh_recurrence.spherical_harmonics_plain` instead.
    """
    if x.shape[0] == 0:
        return x.new_zeros((0, sum(2 * l + 1 for l in ls)))
    return _SphericalHarmonicsFunction.apply(x, ls, normalize, normalization)
