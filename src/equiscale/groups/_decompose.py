"""Decomposition of a representation into irreps, numerically in float64.

Method: for each candidate irrep ``D_i`` the intertwiners ``X`` (``dim x d_i``) with
``rho(g) X = X D_i(g)`` are the nullspace of a symmetric linear system (one ``eigh``) over
test elements ``g`` that generate the group: a finite group's generators, or a few
Haar-random elements of a compact group (which generate a dense subgroup).  A random ``X`` in
that space satisfies ``X^T X = c I`` (Schur), so ``X / sqrt(c)`` is an isometric copy of
``D_i`` inside ``rho``; the space is then projected orthogonally to that copy and the step
repeats until it is empty (and, for finite groups, the count agrees with the multiplicity
``<chi, chi_i> / <chi_i, chi_i>`` from characters).  This handles irreps of real, complex and
quaternionic type alike.  The result is checked to float64 precision before it is returned.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from equiscale.groups._common import batched_block_diag, batched_kron

if TYPE_CHECKING:  # pragma: no cover
    from equiscale.groups._representation import Representation

__all__ = ["decompose", "intertwiners"]

_NULL_RTOL = 1e-9  # eigenvalues below this, relative to the norm bound 4k, count as zero
_CHECK_TOL = 1e-9  # maximum error accepted in the final check


def intertwiners(rho: Tensor, D: Tensor) -> Tensor:
    """Orthonormal basis ``(m, n, d)`` of ``{X (n, d): rho[t] X = X D[t] for all t}``.

    With row-major ``vec(X)``, ``A_t = rho_t (x) I - I (x) D_t^T`` and, both being orthogonal,
    ``sum_t A_t^T A_t = sum_t (2 I - P_t - P_t^T)`` with ``P_t = rho_t (x) D_t``: the
    intertwiners are the nullspace of this symmetric ``(nd, nd)`` matrix (one ``eigh``).
    """
    k, n, _ = rho.shape
    d = D.shape[-1]
    P = batched_kron(rho, D).sum(0)
    M = 2 * k * torch.eye(n * d, dtype=rho.dtype) - P - P.T
    evals, evecs = torch.linalg.eigh(M)
    null = evals < _NULL_RTOL * 4 * k
    return evecs[:, null].T.reshape(-1, n, d)


def _copies(rho: Tensor, D: Tensor, expected: int | None, gen: torch.Generator, label: str) -> list[Tensor]:
    """Isometries ``X (n, d)`` embedding the irrep ``D`` into ``rho``, mutually orthogonal."""
    n, d = rho.shape[-1], D.shape[-1]
    basis = intertwiners(rho, D)
    copies: list[Tensor] = []
    while basis.shape[0] and (expected is None or len(copies) < expected):
        coeff = torch.randn(basis.shape[0], generator=gen, dtype=basis.dtype)
        X = torch.einsum("m,mnd->nd", coeff, basis)
        U, S, Vh = torch.linalg.svd(X, full_matrices=False)
        if not float(S[-1]) > (1 - 1e-6) * float(S[0]):  # Schur: X^T X must be a multiple of I
            raise ValueError(f"decompose: intertwiner for {label} is not a multiple of an isometry "
                             f"(singular values {S.tolist()}); is the input a representation?")
        X = U @ Vh  # = X / sqrt(c), with exactly orthonormal columns
        copies.append(X)
        basis = basis - (X @ X.T) @ basis  # the intertwiners orthogonal to the copies found
        _, S2, Vh2 = torch.linalg.svd(basis.reshape(basis.shape[0], -1), full_matrices=False)
        basis = Vh2[S2 > 0.5].reshape(-1, n, d)
    if expected is not None and (len(copies) != expected or basis.shape[0]):
        raise ValueError(f"decompose: found {len(copies)} copies of {label} but characters say "
                         f"{expected}; the representation may not be a homomorphism")
    return copies


def _random_elements(group, n: int, gen: torch.Generator) -> Tensor:
    """``n >= 2`` Haar-random elements of a compact group; for O(2)/O(3) half proper, half improper."""
    g = group.sample(n, generator=gen)
    if getattr(group, "_special", True):
        return g
    sign = torch.linalg.det(g).sign()  # make the first column carry the wanted determinant
    sign[n // 2 :] *= -1
    g = g.clone()
    g[..., :, 0] *= sign[:, None]
    return g


def _multiplicities(rep: "Representation", irreps: list["Representation"]) -> list[int]:
    """``<chi, chi_i> / <chi_i, chi_i>`` over all elements of a finite group."""
    group = rep.group
    elements = group.elements()
    chi = rep.character(elements).to(torch.float64)
    out = []
    for irr in irreps:
        chi_i = irr.character(elements)
        m = float((chi * chi_i).sum() / (chi_i * chi_i).sum())
        if abs(m - round(m)) > 1e-6:
            raise ValueError(f"decompose: multiplicity of {irr.name} in {rep.name} is {m:.6g}, "
                             "not an integer: the input is not a representation")
        out.append(int(round(m)))
    return out


def decompose(rep: "Representation", max_frequency: int | None = None, seed: int = 0
              ) -> tuple[list["Representation"], Tensor]:
    """Split ``rep`` into irreps: ``(irreps, Q)`` with ``Q rho(g) Q^T = blockdiag(irreps(g))``.

    ``Q`` is orthogonal float64 ``(dim, dim)``.  The irreps come in the canonical order of
    ``group.irreps()``, equal irreps adjacent (e.g. SO(3): by degree ``l``; O(3): as e3nn's
    ``Irreps.sort()``; D(n): by frequency, then reflection flag).  Finite groups: any
    orthogonal representation.  Compact groups: the candidates are the irreps of frequency or
    degree ``<= max_frequency`` (default ``rep.max_frequency``, known for irreps and their
    sums, products, changes of basis and restrictions); ValueError if neither is known or the
    irreps found do not fill ``rep``.  ``seed`` fixes the random choices, so results are
    reproducible; the global random state is not used.
    """
    group = rep.group
    gen = torch.Generator().manual_seed(seed)
    if group.is_finite:
        candidates = group.irreps()
        expected: list[int | None] = list(_multiplicities(rep, candidates))
        gens = list(group.generators) or [int(group.identity)]
        test = torch.tensor(gens, dtype=torch.int64)
        bound = None
    else:
        bound = rep.max_frequency if max_frequency is None else max_frequency
        if bound is None:
            raise ValueError(f"decompose: {rep.name} of {group.name} has no known max_frequency; "
                             "pass decompose(max_frequency=...)")
        candidates = group.irreps(bound)
        expected = [None] * len(candidates)
        test = _random_elements(group, 4, gen)
    rho = rep(test).to(torch.float64)
    found: list[Representation] = []
    isometries: list[Tensor] = []
    for irr, m in zip(candidates, expected):
        if m == 0:
            continue
        D = irr(test).to(torch.float64)
        for X in _copies(rho, D, m, gen, irr.name):
            found.append(irr)
            isometries.append(X)
    covered = sum(irr.dim for irr in found)
    if covered != rep.dim:
        what = f"of frequency/degree <= {bound}" if bound is not None else "of the group"
        raise ValueError(f"decompose: irreps {what} fill only {covered} of the {rep.dim} dimensions "
                         f"of {rep.name}; is max_frequency too small or the input not a representation?")
    Q = torch.cat([X.T for X in isometries], 0)
    _check(rep, found, Q, gen)
    return found, Q


def _check(rep: "Representation", irreps: list["Representation"], Q: Tensor, gen: torch.Generator) -> None:
    """Raise ValueError unless Q is orthogonal and block-diagonalizes rep to ``_CHECK_TOL``."""
    group = rep.group
    if group.is_finite:
        g = group.elements() if group.order <= 256 else group.sample(64, generator=gen)
    else:
        g = _random_elements(group, 6, gen)
    eye = torch.eye(Q.shape[0], dtype=Q.dtype)
    err_q = float((Q @ Q.T - eye).abs().max())
    blocks = batched_block_diag([irr(g).to(torch.float64) for irr in irreps])
    err = float((Q @ rep(g).to(torch.float64) @ Q.T - blocks).abs().max())
    if not max(err, err_q) <= _CHECK_TOL:
        raise ValueError(f"decompose: check failed for {rep.name} (orthogonality error {err_q:.3g}, "
                         f"block error {err:.3g}); the input may not be an orthogonal representation")
