r"""Wigner-D matrices and Clebsch-Gordan (Wigner 3j) coefficients of SO(3), e3nn 0.6 conventions.

Basis. The real basis of degree ``l`` is e3nn's: components are indexed ``0 .. 2l`` and, for
``l = 1``, they are ``(x, y, z)`` so that ``D^1(R) = R``. The complex (standard, Condon-Shortley)
basis is related to it by ``change_basis_real_to_complex(l)``, a unitary ``Q`` with
``y_complex = Q @ y_real``; it carries e3nn's extra phase ``(-i)^l`` which makes the real
Clebsch-Gordan coefficients real.

Clebsch-Gordan sign and normalisation (exactly e3nn 0.6):

.. math::

    C_{abc} = \frac{1}{\sqrt{2 l_3 + 1}} \,\mathrm{Re} \sum_{m_1, m_2}
        Q^{l_1}_{m_1 a} Q^{l_2}_{m_2 b} \overline{Q^{l_3}_{m_1 + m_2, c}}
        \langle l_1 m_1 l_2 m_2 | l_3, m_1 + m_2 \rangle

with the standard (Condon-Shortley) complex coefficients, so that ``sum C**2 == 1`` and
``C`` is invariant: ``einsum('ijk,il,jm,kn->lmn', C, D1, D2, D3) == C``.

Accuracy. The complex coefficients come from Racah's formula in exact rational arithmetic
(one rounding at the end), the change of basis is done in complex128, and everything is cached
per ``l`` in float64 and cast at use. ``D^l(R)`` is built from ``R`` itself by the exact
recursion ``D^l = C^T (D^{l-1} \otimes R) C`` (``C`` the isometric ``(l-1) x 1 -> l``
coupling), never through Euler angles, so it is accurate to float64 rounding for every
rotation, including those with Euler angle ``beta`` near 0 or pi.
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import List, Optional, Tuple

import numpy as np
import torch

from equiscale.o3._rotation import _as_float_tensor, _det3, angles_to_matrix, check_rotation_matrix
from equiscale.errors import InvalidArgumentError

__all__ = ["wigner_D", "wigner_3j", "change_basis_real_to_complex", "su2_generators", "so3_generators"]

_COMPLEX = {torch.float16: torch.complex32, torch.bfloat16: torch.complex64,
            torch.float32: torch.complex64, torch.float64: torch.complex128}


def _device(device: Optional[torch.device]) -> torch.device:
    """``device``, or torch's default device (as e3nn) when None."""
    if device is not None:
        return torch.device(device)
    getter = getattr(torch, "get_default_device", None)  # torch >= 2.3
    return getter() if getter is not None else torch.empty(0).device


def _check_degree(name: str, l: object) -> int:
    """Return ``l`` as an int, or raise ValueError if it is not a non-negative integer."""
    if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or l < 0:
        raise InvalidArgumentError(f"{name} must be a non-negative integer, got {l!r}")
    return int(l)


# --------------------------------------------------------------------------- exact coefficients
@functools.lru_cache(maxsize=None)
def _complex_clebsch_gordan(l1: int, l2: int, l3: int) -> np.ndarray:
    """Standard complex CG ``<l1 m1 l2 m2 | l3 m3>`` as float64 ``[m1 + l1, m2 + l2, m3 + l3]``.

    Racah's formula in exact integer arithmetic: the square is an exact fraction, rounded once.
    """
    f = math.factorial
    out = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1))
    tri_num = (2 * l3 + 1) * f(l1 + l2 - l3) * f(l1 - l2 + l3) * f(-l1 + l2 + l3)
    tri_den = f(l1 + l2 + l3 + 1)
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            m3 = m1 + m2
            if abs(m3) > l3:
                continue
            kmin = max(0, l2 - l3 - m1, l1 - l3 + m2)
            kmax = min(l1 + l2 - l3, l1 - m1, l2 + m2)
            if kmin > kmax:
                continue
            dens = [f(k) * f(l1 + l2 - l3 - k) * f(l1 - m1 - k) * f(l2 + m2 - k)
                    * f(l3 - l2 + m1 + k) * f(l3 - l1 - m2 + k) for k in range(kmin, kmax + 1)]
            common = math.lcm(*dens)
            s = sum((-1) ** k * (common // d) for k, d in zip(range(kmin, kmax + 1), dens))
            if s == 0:
                continue
            prod = f(l1 + m1) * f(l1 - m1) * f(l2 + m2) * f(l2 - m2) * f(l3 + m3) * f(l3 - m3)
            square = Fraction(tri_num * prod * s * s, tri_den * common * common)  # exact CG^2
            out[l1 + m1, l2 + m2, l3 + m3] = math.copysign(math.sqrt(square), s)
    return out


@functools.lru_cache(maxsize=None)
def _real_to_complex(l: int) -> np.ndarray:
    """complex128 ``(2l+1, 2l+1)`` unitary ``Q`` with rows = complex ``m``, columns = real index."""
    h = 1 / math.sqrt(2)
    q = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    q[l, l] = 1.0
    for m in range(1, l + 1):
        sign = (-1) ** m
        q[l - m, l + m] = h  # m < 0 row: mixes the "cos" (l+m) and "sin" (l-m) real columns
        q[l - m, l - m] = -1j * h
        q[l + m, l + m] = sign * h
        q[l + m, l - m] = 1j * sign * h
    return q * (-1j) ** l


@functools.lru_cache(maxsize=None)
def _real_clebsch_gordan(l1: int, l2: int, l3: int) -> np.ndarray:
    """float64 e3nn-normalised real coefficients ``(2l1+1, 2l2+1, 2l3+1)`` (read-only, cached)."""
    cg = _complex_clebsch_gordan(l1, l2, l3)
    c = np.einsum("ia,jb,kc,ijk->abc", _real_to_complex(l1), _real_to_complex(l2),
                  _real_to_complex(l3).conj(), cg, optimize=True)
    assert np.abs(c.imag).max(initial=0.0) < 1e-12, "real Clebsch-Gordan coefficients are not real"
    out = np.ascontiguousarray(c.real) / math.sqrt(2 * l3 + 1)
    out.setflags(write=False)
    return out


def wigner_3j(l1: int, l2: int, l3: int, dtype: Optional[torch.dtype] = None,
              device: Optional[torch.device] = None) -> torch.Tensor:
    r"""Real Wigner 3j tensor ``C`` of shape ``(2 l1 + 1, 2 l2 + 1, 2 l3 + 1)``, as e3nn 0.6.

    ``C`` is invariant, ``C_{lmn} = C_{ijk} D^{l1}_{il} D^{l2}_{jm} D^{l3}_{kn}`` for every
    rotation, and normalised, ``sum(C**2) == 1``; its sign is e3nn's (see the module docstring).
    Computed from exact rational coefficients; ``dtype=None`` gives torch's default dtype, like
    e3nn, and ``dtype=torch.float64`` is accurate to float64 rounding. Returns a new tensor.

    Raises ValueError unless the degrees are non-negative integers with
    ``|l2 - l3| <= l1 <= l2 + l3``.
    """
    l1, l2, l3 = (_check_degree(n, v) for n, v in (("l1", l1), ("l2", l2), ("l3", l3)))
    if not abs(l2 - l3) <= l1 <= l2 + l3:
        raise InvalidArgumentError(f"wigner_3j: degrees ({l1}, {l2}, {l3}) violate the triangle rule "
                                   f"|l2 - l3| <= l1 <= l2 + l3")
    c = torch.from_numpy(np.array(_real_clebsch_gordan(l1, l2, l3)))
    return c.to(dtype=dtype or torch.get_default_dtype(), device=_device(device))


# --------------------------------------------------------------------------- generators
def change_basis_real_to_complex(l: int, dtype: Optional[torch.dtype] = None,
                                 device: Optional[torch.device] = None) -> torch.Tensor:
    r"""Unitary ``Q`` of shape ``(2l+1, 2l+1)`` with ``y_complex = Q @ y_real`` (e3nn's convention).

    Rows are the complex ``m = -l .. l``, columns the real basis. Includes e3nn's global phase
    ``(-i)^l``. ``dtype`` is the real dtype whose complex counterpart is returned (default: torch's
    default dtype, so complex64 unless changed).
    """
    l = _check_degree("l", l)
    real = dtype or torch.get_default_dtype()
    if real.is_complex:
        cdtype = real
    elif real in _COMPLEX:
        cdtype = _COMPLEX[real]
    else:
        raise InvalidArgumentError(f"change_basis_real_to_complex: unsupported dtype {real}")
    return torch.from_numpy(_real_to_complex(l).copy()).to(dtype=cdtype, device=_device(device))


def su2_generators(j: int, dtype: Optional[torch.dtype] = None,
                   device: Optional[torch.device] = None) -> torch.Tensor:
    r"""Generators of SU(2) in the complex ``m = -j .. j`` basis, e3nn's signs: shape ``(3, 2j+1, 2j+1)``.

    The three matrices are (usually called) ``J_x``, ``J_z`` and ``-J_y`` multiplied by ``i``; in
    e3nn's real basis they generate rotations about x, y and z. ``j`` may be a half-integer.
    ``dtype`` is the complex dtype (default: the complex counterpart of torch's default dtype).
    """
    two_j = 2 * j
    if isinstance(j, bool) or not float(two_j).is_integer() or j < 0:
        raise InvalidArgumentError(f"su2_generators: j must be a non-negative integer or half-integer, got {j!r}")
    n = int(round(two_j)) + 1
    m = np.arange(n) - j
    jj = j * (j + 1)
    up = np.diag(-np.sqrt(jj - m[:-1] * (m[:-1] + 1)), k=-1)  # e3nn's "raising" (with its sign)
    down = np.diag(np.sqrt(jj - m[1:] * (m[1:] - 1)), k=1)
    g = np.stack([0.5 * (up + down), np.diag(1j * m), -0.5j * (up - down)]).astype(np.complex128)
    if dtype is None:
        dtype = _COMPLEX[torch.get_default_dtype()]
    return torch.from_numpy(g).to(dtype=dtype, device=_device(device))


@functools.lru_cache(maxsize=None)
def _so3_generators64(l: int) -> np.ndarray:
    g = su2_generators(l, dtype=torch.complex128).numpy()
    q = _real_to_complex(l)
    x = q.conj().T[None] @ g @ q[None]
    assert np.abs(x.imag).max(initial=0.0) < 1e-12
    out = np.ascontiguousarray(x.real)
    out.setflags(write=False)
    return out


def so3_generators(l: int, dtype: Optional[torch.dtype] = None,
                   device: Optional[torch.device] = None) -> torch.Tensor:
    r"""Real antisymmetric generators ``(X_x, X_y, X_z)`` of SO(3) for degree ``l``: ``(3, 2l+1, 2l+1)``.

    ``D^l`` of the rotation by angle ``t`` about axis ``k`` is ``matrix_exp(t * X[k])``; for
    ``l = 1`` these are the usual cross-product matrices. Built in float64, returned in ``dtype``
    (default: torch's default dtype).
    """
    l = _check_degree("l", l)
    return torch.from_numpy(np.array(_so3_generators64(l))).to(
        dtype=dtype or torch.get_default_dtype(), device=_device(device))


# --------------------------------------------------------------------------- Wigner-D
@functools.lru_cache(maxsize=None)
def _coupling64(l: int) -> np.ndarray:
    """Isometric coupling ``(2l-1, 3, 2l+1)`` of ``(l-1) x 1 -> l`` in float64 (``C^T C = 1``)."""
    return _real_clebsch_gordan(l - 1, 1, l) * math.sqrt(2 * l + 1)


@torch.compiler.assume_constant_result
def _coupling(l: int, dtype: torch.dtype, device: torch.device):
    """The coupling as two GEMM-ready tensors in ``dtype`` on ``device`` (cached, never mutated).

    ``first[(d, n), c] = C[c, d, n]`` and ``second[m, (a, b)] = C[a, b, m]``. ``torch.compile``
    calls this at trace time and keeps the result as constants (its numpy code is not traced).
    """
    return _coupling_cached(l, dtype, device)


@functools.lru_cache(maxsize=64)
def _coupling_cached(l: int, dtype: torch.dtype, device: torch.device):
    c = torch.from_numpy(np.array(_coupling64(l))).to(dtype=dtype, device=device)
    a, n = 2 * l - 1, 2 * l + 1
    return c.reshape(a, 3 * n).t().contiguous(), c.reshape(3 * a, n).t().contiguous()


def _wigner_D_list(R: torch.Tensor, lmax: int) -> List[torch.Tensor]:
    r"""``[D^0(R), ..., D^lmax(R)]`` for proper rotations ``R`` of shape ``(..., 3, 3)``.

    ``D^l`` has shape ``(..., 2l+1, 2l+1)`` and ``R``'s dtype and device (``l >= 2`` come as
    non-contiguous views). Exact recursion ``D^l_{mn} = C_{abm} D^{l-1}_{ac} R_{bd} C_{cdn}``,
    computed with the batch axis last so that each degree costs two large GEMMs with the constant
    coupling and three batched multiply-adds. ``R`` is not validated here.
    """
    batch = R.shape[:-2]
    out = [torch.ones(*batch, 1, 1, dtype=R.dtype, device=R.device)]
    if lmax >= 1:
        out.append(R)
    if lmax < 2:
        return out
    s = R.reshape(-1, 3, 3).permute(1, 2, 0)  # s[b, d, z] = R_bd
    z = s.shape[-1]
    # y[c, a, z] holds a matrix X_ac; f(X, S) = C^T (X (x) S) C obeys f(X, S)^T = f(X^T, S^T).
    # Each step stores f(X, S) as the next y, i.e. as the matrix f(X, S)^T, so y alternates
    # between D^l and its transpose and s between R and R^T.
    y = s.transpose(0, 1).contiguous()  # X = R
    s = s.contiguous()
    for l in range(2, lmax + 1):
        first, second = _coupling(l, R.dtype, R.device)
        a, n = 2 * l - 1, 2 * l + 1
        g = (first @ y.reshape(a, a * z)).reshape(3, n, a, z)  # g[d, n, a, z] = C_cdn X_ac
        t = g[0].transpose(0, 1)[:, None] * s[None, :, 0, None]  # t[a, b, n, z] = g_dna s_bd
        t.addcmul_(g[1].transpose(0, 1)[:, None], s[None, :, 1, None])
        t.addcmul_(g[2].transpose(0, 1)[:, None], s[None, :, 2, None])
        y = (second @ t.reshape(3 * a, n * z)).reshape(n, n, z)  # y[m, n, z] = f(X, S)_mn
        d = y.permute(2, 0, 1) if l % 2 == 0 else y.permute(2, 1, 0)  # even l: f = D^l
        out.append(d.reshape(*batch, n, n))
        s = s.transpose(0, 1)
    return out


def _wigner_D_from_matrix(l: int, R: torch.Tensor) -> torch.Tensor:
    """``D^l(R)`` for proper rotations ``R`` (..., 3, 3): shape (..., 2l+1, 2l+1); no validation."""
    return _wigner_D_list(R, l)[l].contiguous()


def wigner_D(l: int, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    r"""Wigner-D matrix ``D^l(alpha, beta, gamma)`` of shape ``(..., 2l+1, 2l+1)``, as e3nn 0.6.

    The rotation is ``Y(alpha) X(beta) Y(gamma)`` (see ``angles_to_matrix``): ``gamma`` about y
    applied first, then ``beta`` about x, then ``alpha`` about y; the angles broadcast together.
    ``D^1`` is that 3x3 rotation matrix; ``D`` is orthogonal and a homomorphism. The result has the
    angles' dtype (torch's default dtype for non-float input) and is float64-accurate for float64
    angles: it is built from the rotation matrix, not from matrix exponentials.
    """
    l = _check_degree("l", l)
    alpha, beta, gamma = torch.broadcast_tensors(*(_as_float_tensor(x) for x in (alpha, beta, gamma)))
    return _wigner_D_from_matrix(l, angles_to_matrix(alpha, beta, gamma))


# --------------------------------------------------------------------------- O(3) helpers
def _split_o3(R) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate ``R (..., 3, 3)`` as an O(3) matrix; return the rotation ``det(R) R`` and
    ``k = (1 - det R) / 2`` (shape ``(...)``)."""
    if not isinstance(R, torch.Tensor):
        R = torch.as_tensor(R, dtype=torch.get_default_dtype())
    check_rotation_matrix(R, allow_reflection=True)
    d = torch.where(_det3(R.detach()) < 0, -1.0, 1.0).to(R.dtype)
    return d[..., None, None] * R, (1 - d) / 2


def _matrix_and_k(alpha, beta, gamma, k) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Rotation matrix of Euler angles and ``k``, all broadcast together (``k`` may be None)."""
    angles = [_as_float_tensor(x) for x in (alpha, beta, gamma)]
    if k is not None:
        angles.append(torch.as_tensor(k, device=angles[0].device))
    angles = torch.broadcast_tensors(*angles)
    return angles_to_matrix(*angles[:3]), (angles[3] if k is not None else None)


def _irrep_matrices(irreps, R: torch.Tensor, k: Optional[torch.Tensor],
                    contiguous: bool = True) -> List[torch.Tensor]:
    """``p^k D^l(R)`` for each ``(l, p)`` in ``irreps``; ``R`` proper rotations."""
    irreps = list(irreps)
    ds = _wigner_D_list(R, max(l for l, _ in irreps)) if irreps else []
    out = []
    for l, p in irreps:
        D = ds[l]
        if k is not None and p == -1:
            k_ = torch.as_tensor(k, device=D.device)
            D = D * (1 - 2 * torch.remainder(k_, 2)).to(D.dtype)[..., None, None]
        out.append(D.contiguous() if contiguous else D)
    return out
