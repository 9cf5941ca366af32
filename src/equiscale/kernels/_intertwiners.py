"""Equivariant maps ``W: Y_J (x) rho_in -> rho_out``, the angular core of a steerable kernel.

A kernel ``K(x) = R(|x|) sum_m W[:, :, m] Y_J,m(x / |x|)`` satisfies the constraint
``K(g x) = rho_out(g) K(x) rho_in(g)^-1`` exactly when, for every ``g``,

    sum_m W[o, i, m] D_J(g)[m, m'] = sum_{o', i'} rho_out(g)[o, o'] rho_in(g)[i, i'] W[o', i', m'],

i.e. ``W`` is an intertwiner from ``D_J (x) rho_in`` to ``rho_out`` (``D_J`` the representation of
the harmonic, :func:`.harmonic_representation`). Both constructions below return an orthonormal
basis of that space (Frobenius inner product), float64 ``(count, out.dim, in.dim, D_J.dim)``:

* :func:`numerical_intertwiners`, any group: the nullspace of the constraint at the generators
  (finite groups) or at a few fixed random elements (compact groups, which they generate densely),
  solved by :func:`equiscale.groups.intertwiners` as in the decomposition of representations.
* :func:`analytic_intertwiners`, for irreducible ``rho_in``, ``rho_out`` (the Wigner-Eckart
  construction): in 3D the Clebsch-Gordan coefficients ``wigner_3j(l_out, l_in, J)``, with the
  parity rule ``p_out = p_in (-1)^J`` for O(3); in 2D the products of complex numbers
  ``a * y^(+-) * v^(+-)`` (``y`` the harmonic and ``v`` the input as complex numbers, ``^-`` the
  conjugate, ``a`` in ``{1, i}``) whose frequency ``+-J +- f_in`` equals ``f_out``, modulo ``n``
  for ``C(n)``/``D(n)`` (the aliasing of a finite group), then averaged with their reflection for
  ``D(n)``/``O(2)``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from equiscale.groups import CyclicGroup, DihedralGroup, O2Group, O3Group, Representation, intertwiners
from equiscale.groups._common import batched_kron
from equiscale.kernels._harmonics import harmonic_representation, space_dimension

__all__ = ["numerical_intertwiners", "analytic_intertwiners", "constraint_elements"]

_RANK_TOLERANCE = 1e-8


def constraint_elements(group: Any) -> Any:
    """Elements at which the constraint is imposed: generators, or fixed random elements plus a reflection."""
    if group.is_finite:
        return torch.tensor(group.generators or (0,), dtype=torch.int64)  # C(1) has no generators
    generator = torch.Generator().manual_seed(12345)
    elements = group.sample(4, generator=generator)
    if isinstance(group, O2Group):
        elements = torch.cat([elements, torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))[None]])
    elif isinstance(group, O3Group):
        elements = torch.cat([elements, -elements[:1]])
    return elements


def _orthonormal_rows(candidates: Tensor) -> Tensor:
    """An orthonormal basis of the span of the rows of ``candidates`` ``(c, N)``: ``(rank, N)``."""
    if candidates.shape[0] == 0:
        return candidates
    _, s, vh = torch.linalg.svd(candidates, full_matrices=False)
    rank = int((s > _RANK_TOLERANCE * max(1.0, float(s[0]))).sum())
    return vh[:rank]


def numerical_intertwiners(group: Any, J: int, rho_in: Representation, rho_out: Representation) -> Tensor:
    """Orthonormal basis of intertwiners ``Y_J (x) rho_in -> rho_out`` from the constraint's nullspace."""
    harmonic = harmonic_representation(group, J)
    g = constraint_elements(group)
    # W flattened to (o i, m): (rho_out(g) (x) rho_in(g)) W = W D_J(g), the intertwiners of the groups package
    basis = intertwiners(batched_kron(rho_out(g), rho_in(g)), harmonic(g))
    return basis.reshape(-1, rho_out.dim, rho_in.dim, harmonic.dim)


# --- analytic ------------------------------------------------------------------------------------
def analytic_intertwiners(group: Any, J: int, rho_in: Representation, rho_out: Representation) -> Tensor:
    """Orthonormal basis of intertwiners ``Y_J (x) rho_in -> rho_out`` for irreps, in closed form."""
    for rep, side in ((rho_in, "input"), (rho_out, "output")):
        if rep.irrep_id is None or rep.group != group:
            raise ValueError(f"analytic_intertwiners needs irreps of {group.name}; the {side} is {rep.name}")
    if space_dimension(group) == 3:
        return _spherical(group, J, rho_in, rho_out)
    return _planar(group, J, rho_in, rho_out)


def _spherical(group: Any, J: int, rho_in: Representation, rho_out: Representation) -> Tensor:
    from equiscale.o3 import wigner_3j

    l_in, l_out = rho_in.irrep_id[0], rho_out.irrep_id[0]
    empty = torch.zeros(0, 2 * l_out + 1, 2 * l_in + 1, 2 * J + 1, dtype=torch.float64)
    if not abs(l_in - l_out) <= J <= l_in + l_out:
        return empty
    if isinstance(group, O3Group) and rho_out.irrep_id[1] != rho_in.irrep_id[1] * (-1) ** J:
        return empty
    w = wigner_3j(l_out, l_in, J, dtype=torch.float64)
    return (w / w.norm())[None]


def _modulus(group: Any) -> int:
    """Frequencies are equal modulo ``n`` for ``C(n)``/``D(n)``; exactly (0) for SO(2)/O(2)."""
    return group.n if isinstance(group, (CyclicGroup, DihedralGroup)) else 0


def _reflection(group: Any) -> Any | None:
    """The reflection ``s: (x, y) -> (x, -y)`` as an element, or None for rotation groups."""
    if isinstance(group, DihedralGroup):
        return torch.tensor(group.n)
    if isinstance(group, O2Group):
        return torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    return None


def _as_complex(index: int, dim: int) -> complex:
    """Basis vector ``index`` of a 1-d (real) or 2-d (complex) space as a complex number."""
    return 1.0 if dim == 1 else (1.0 if index == 0 else 1j)


def _planar(group: Any, J: int, rho_in: Representation, rho_out: Representation) -> Tensor:
    f_in, f_out = rho_in.irrep_id[-1], rho_out.irrep_id[-1]
    d_in, d_out, d_j = rho_in.dim, rho_out.dim, 1 if J == 0 else 2
    n = _modulus(group)
    candidates = []
    for s_j in ((1, -1) if d_j == 2 else (1,)):
        for s_in in ((1, -1) if d_in == 2 else (1,)):
            frequency = s_j * J + s_in * f_in
            difference = frequency - f_out
            if (difference % n if n else difference) != 0:
                continue
            for a in (1.0, 1j):
                w = torch.zeros(d_out, d_in, d_j, dtype=torch.float64)
                for i in range(d_in):
                    for m in range(d_j):
                        y, v = _as_complex(m, d_j), _as_complex(i, d_in)
                        t = a * (y if s_j > 0 else y.conjugate()) * (v if s_in > 0 else v.conjugate())
                        w[0, i, m] = t.real
                        if d_out == 2:
                            w[1, i, m] = t.imag
                candidates.append(w)
    if not candidates:
        return torch.zeros(0, d_out, d_in, d_j, dtype=torch.float64)
    stacked = torch.stack(candidates)
    s = _reflection(group)
    if s is not None:
        ro, ri, dj = rho_out(s), rho_in(s), harmonic_representation(group, J)(s)
        # (rho_out(s) (x) rho_in(s)) W D_J(s), one factor at a time
        reflected = torch.einsum("ab,cbjn->cajn", ro, stacked @ dj)
        reflected = torch.einsum("ij,cajn->cain", ri, reflected)
        stacked = (stacked + reflected) / 2
    rows = _orthonormal_rows(stacked.reshape(stacked.shape[0], -1))
    return rows.reshape(-1, d_out, d_in, d_j)
