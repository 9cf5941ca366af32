"""Tensor expansion: the Clebsch-Gordan map from irreps coefficients to AO blocks is orthogonal and
exactly equivariant (float64 <= 1e-12) under rotations and reflections, for s, p, d and f shells."""
from __future__ import annotations

import pytest
import torch

from equiscale import o3
from equiscale.quantum.basis import atom_irreps as shell_irreps
from equiscale.quantum.expansion import TensorExpansion, block_irreps, expansion_matrix


def _random_o3(generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    return q * torch.sign(torch.diagonal(r))  # Haar on O(3): det +1 or -1


def test_shell_irreps_and_block_irreps():
    assert shell_irreps([0, 0, 1, 2, 3]) == o3.Irreps("0e+0e+1o+2e+3o")
    assert block_irreps(o3.Irrep("1o"), o3.Irrep("1o")) == [o3.Irrep(s) for s in ("0e", "1e", "2e")]
    assert block_irreps(o3.Irrep("1o"), o3.Irrep("2e")) == [o3.Irrep(s) for s in ("1o", "2o", "3o")]


@pytest.mark.parametrize("rows, cols", [("0e", "0e"), ("0e+0e+1o", "0e+0e+1o"), ("0e+1o+2e", "0e+0e+1o"),
                                        ("1o+2e+3o", "2e+3o"), ("2x0e+2x1o+1x2e", "1x0e+1x1o")])
def test_expansion_is_orthogonal_and_equivariant(rows, cols):
    expansion = TensorExpansion(rows, cols)
    matrix = expansion.matrix
    assert matrix.shape == (o3.Irreps(rows).dim * o3.Irreps(cols).dim,) * 2
    assert torch.allclose(matrix.T @ matrix, torch.eye(matrix.shape[0], dtype=torch.float64), atol=1e-13)
    generator = torch.Generator().manual_seed(0)
    coefficients = torch.randn(4, expansion.irreps_out.dim, dtype=torch.float64, generator=generator)
    blocks = expansion(coefficients)
    assert torch.allclose(expansion.project(blocks), coefficients, atol=1e-13)
    for _ in range(3):
        rotation = _random_o3(generator)
        d_rows, d_cols = expansion.rows.D_from_matrix(rotation), expansion.cols.D_from_matrix(rotation)
        d_out = expansion.irreps_out.D_from_matrix(rotation)
        rotated = expansion(coefficients @ d_out.T)
        assert (rotated - d_rows @ blocks @ d_cols.T).abs().max() <= 1e-12


def test_transpose_swaps_rows_and_columns():
    """Blocks of (cols x rows) are the transposes of blocks of (rows x cols) for the projected coefficients."""
    forward, backward = TensorExpansion("0e+1o+2e", "0e+1o"), TensorExpansion("0e+1o", "0e+1o+2e")
    blocks = forward(torch.randn(3, forward.irreps_out.dim, dtype=torch.float64))
    assert torch.allclose(backward(backward.project(blocks.transpose(-1, -2))), blocks.transpose(-1, -2), atol=1e-13)


def test_float32_coefficients_give_float32_blocks():
    expansion = TensorExpansion("0e+1o", "0e+1o")
    assert expansion(torch.randn(2, expansion.irreps_out.dim)).dtype == torch.float32
    irreps, matrix = expansion_matrix("1o", "1o")
    assert irreps == o3.Irreps("0e+1e+2e") and matrix.dtype == torch.float64
