"""SO3Grid: e3nn 0.6's buffers and numbers, exact round trip when band-limited, translations, errors."""
import math

import pytest
import torch

from equiscale import o3
from equiscale.errors import InvalidArgumentError
from tests.helpers import default_dtype

e3 = pytest.importorskip("e3nn.o3")

F64 = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _blocks(x, lmax, fn):
    """Apply ``fn(F, l)`` to each flattened (2l+1, 2l+1) block ``F^l`` of ``x (..., dim)``."""
    out, i = [], 0
    for l in range(lmax + 1):
        d = 2 * l + 1
        out.append(fn(x[..., i:i + d * d].reshape(*x.shape[:-1], d, d), l).flatten(-2))
        i += d * d
    return torch.cat(out, -1)


def _left(x, R, lmax):
    """F^l -> D^l(R) F^l."""
    return _blocks(x, lmax, lambda F, l: o3.Irrep(l, 1).D_from_matrix(R) @ F)


def _right(x, R, lmax):
    """F^l -> F^l D^l(R)^T."""
    return _blocks(x, lmax, lambda F, l: F @ o3.Irrep(l, 1).D_from_matrix(R).T)


@pytest.mark.parametrize("lmax, resolution, aspect_ratio", [(2, 3, 2), (3, 4, 1), (1, 2, 2), (2, 4, 1.5)])
def test_so3grid_matches_e3nn(lmax, resolution, aspect_ratio):
    with default_dtype(F64):
        ref = e3.SO3Grid(lmax, resolution, aspect_ratio=aspect_ratio)
    ours = o3.SO3Grid(lmax, resolution, aspect_ratio=aspect_ratio, dtype=F64)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert (ours.res_alpha, ours.res_beta, ours.res_gamma) == (ref.res_alpha, ref.res_beta, ref.res_gamma)
    for key, value in ref.state_dict().items():
        # e3nn builds D through matrix exponentials (~1e-14); ours from the rotation matrix
        torch.testing.assert_close(ours.state_dict()[key], value, atol=1e-12, rtol=0)
    x = _randn(2, ours.D.shape[-1])
    f = _randn(2, *ours.D.shape[:3], seed=1)
    with default_dtype(F64):
        ref_x, ref_f = ref.to_grid(x), ref.from_grid(f)
    torch.testing.assert_close(ours.to_grid(x), ref_x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours.from_grid(f), ref_f, atol=1e-12, rtol=0)
    ref32, ours32 = e3.SO3Grid(lmax, resolution, aspect_ratio=aspect_ratio), o3.SO3Grid(lmax, resolution,
                                                                                       aspect_ratio=aspect_ratio)
    assert ours32.D.dtype == torch.float32
    torch.testing.assert_close(ours32.to_grid(x.float()), ref32.to_grid(x.float()), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours32.from_grid(f.float()), ref32.from_grid(f.float()), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lmax, resolution, aspect_ratio", [(0, 1, 2), (2, 3, 2), (3, 4, 1)])
def test_round_trip_and_translations(lmax, resolution, aspect_ratio):
    grid = o3.SO3Grid(lmax, resolution, aspect_ratio=aspect_ratio, dtype=F64)
    x = _randn(3, grid.D.shape[-1])
    torch.testing.assert_close(grid.from_grid(grid.to_grid(x)), x, atol=1e-12, rtol=0)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        R = o3.rand_matrix(dtype=F64)
    # the grid signal of D(R) F is f(R^-1 g): from_grid recovers it exactly (band-limited)
    alpha, beta, gamma = torch.meshgrid(grid.alpha, grid.beta, grid.gamma, indexing="ij")
    g = o3.angles_to_matrix(alpha, beta, gamma)
    a, b, c = o3.matrix_to_angles(R.T @ g)
    shifted = torch.einsum("...i,abci->...abc", x, o3._so3grid.flat_wigner(lmax, a, b, c)) / grid.D.shape[-1] ** 0.5
    torch.testing.assert_close(grid.to_grid(_left(x, R, lmax)), shifted, atol=1e-12, rtol=0)
    torch.testing.assert_close(grid.from_grid(shifted), _left(x, R, lmax), atol=1e-12, rtol=0)
    # rotations about y by 2 pi k / na shift alpha (left, f(R^-1 g)) or gamma (right, f(g R)) exactly
    Ry = o3.matrix_y(torch.tensor(2 * math.pi / grid.res_alpha, dtype=F64))
    torch.testing.assert_close(grid.to_grid(_left(x, Ry, lmax)), grid.to_grid(x).roll(1, dims=-3), atol=1e-12, rtol=0)
    torch.testing.assert_close(grid.to_grid(_right(x, Ry, lmax)), grid.to_grid(x).roll(-1, dims=-1), atol=1e-12,
                               rtol=0)


def test_errors_and_repr():
    with pytest.raises(InvalidArgumentError, match="too large for resolution=3"):
        o3.SO3Grid(3, 3)
    with pytest.raises(InvalidArgumentError, match="normalization='component'"):
        o3.SO3Grid(1, 2, normalization="norm")
    with pytest.raises(InvalidArgumentError, match="resolution must be"):
        o3.SO3Grid(1, 0)
    grid = o3.SO3Grid(1, 2)
    with pytest.raises(InvalidArgumentError, match="expects \\(..., 10\\)"):
        grid.to_grid(torch.zeros(4))
    with pytest.raises(InvalidArgumentError, match="expects \\(..., 8, 4, 8\\)"):
        grid.from_grid(torch.zeros(8, 4, 7))
    assert repr(grid) == "SO3Grid(lmax=1 res=8x4x8)"
