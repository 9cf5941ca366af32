"""S2Activation and SO3Activation: e3nn 0.6's irreps, buffers and numbers; equivariance to the stated bounds."""
import math

import pytest
import torch

from equiscale import nn, o3
from equiscale.errors import InvalidArgumentError
from tests.helpers import default_dtype

e3nn_nn = pytest.importorskip("e3nn.nn")

F64 = torch.float64


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _rotation(seed):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return o3.rand_matrix(dtype=F64)


def _relative(a, b):
    return ((a - b).norm() / b.norm()).item()


S2_CASES = [  # irreps, act, res, lmax_out
    ("0e+1o+2e+3o", torch.tanh, 10, None),
    ("0o+1e+2o", torch.tanh, (12, 13), 4),   # odd input, odd act
    ("0o+1e+2o", torch.abs, (12, 14), 1),    # odd input, even act, even res_alpha (einsum path)
    ("0e+1e+2e", torch.relu, 20, 2),
]


@pytest.mark.parametrize("irreps, act, res, lmax_out", S2_CASES)
def test_s2_activation_matches_e3nn(irreps, act, res, lmax_out):
    x = _randn(4, o3.Irreps(irreps).dim)
    with default_dtype(F64):
        ref = e3nn_nn.S2Activation(irreps, act, res, lmax_out=lmax_out)
        expected = ref(x)
    ours = nn.S2Activation(irreps, act, res, lmax_out=lmax_out, dtype=F64)
    assert ours.irreps_in == ref.irreps_in and ours.irreps_out == ref.irreps_out
    assert list(ours.state_dict()) == list(ref.state_dict())
    torch.testing.assert_close(ours(x), expected, atol=1e-12, rtol=0)
    ref32, ours32 = e3nn_nn.S2Activation(irreps, act, res, lmax_out=lmax_out), nn.S2Activation(irreps, act, res,
                                                                                               lmax_out=lmax_out)
    out32 = ours32(x.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32, ref32(x.float()), atol=1e-5, rtol=1e-5)
    assert repr(ours) == repr(ref)


def test_so3_activation_matches_e3nn():
    x = _randn(3, 35)
    with default_dtype(F64):
        ref = e3nn_nn.SO3Activation(2, 3, torch.tanh, 5)
        expected = ref(x)
    ours = nn.SO3Activation(2, 3, torch.tanh, 5, dtype=F64)
    assert list(ours.state_dict()) == list(ref.state_dict()) and repr(ours) == repr(ref)
    torch.testing.assert_close(ours(x), expected, atol=1e-12, rtol=0)
    ref32, ours32 = e3nn_nn.SO3Activation(2, 3, torch.tanh, 5), nn.SO3Activation(2, 3, torch.tanh, 5)
    torch.testing.assert_close(ours32(x.float()), ref32(x.float()), atol=1e-5, rtol=1e-5)


def test_s2_activation_equivariance():
    """Exact for rotations about y by 2 pi k / res_alpha; up to aliasing (< 1e-6 at res 40) otherwise."""
    m = nn.S2Activation("0e+1o+2e", torch.tanh, 40, dtype=F64)
    x = _randn(50, m.irreps_in.dim)
    D_in, D_out = m.irreps_in.D_from_matrix, m.irreps_out.D_from_matrix
    for k in (1, 7):
        Ry = o3.matrix_y(torch.tensor(2 * math.pi * k / m.to_s2.res_alpha, dtype=F64))
        torch.testing.assert_close(m(x @ D_in(Ry).T), m(x) @ D_out(Ry).T, atol=1e-12, rtol=0)
    for seed in range(3):
        R = _rotation(seed)
        assert _relative(m(x @ D_in(R).T), m(x) @ D_out(R).T) < 1e-6
    coarse = nn.S2Activation("0e+1o+2e", torch.tanh, 10, dtype=F64)  # the bound is the grid's, not exactness
    assert _relative(coarse(x @ D_in(R).T), coarse(x) @ D_out(R).T) > 1e-4
    # parity: an odd input under an odd act gives an odd output (inversion -I)
    m = nn.S2Activation("0o+1e+2o", torch.tanh, 40, dtype=F64)
    x = _randn(50, m.irreps_in.dim, seed=1)
    inv = -torch.eye(3, dtype=F64)
    assert _relative(m(x @ m.irreps_in.D_from_matrix(inv).T), m(x) @ m.irreps_out.D_from_matrix(inv).T) < 1e-6


def test_s2_activation_float32_and_random_rot():
    m = nn.S2Activation("0e+1o+2e", torch.tanh, 40)
    x = _randn(20, 9).float()
    R = _rotation(7).float()
    out = m(x @ m.irreps_in.D_from_matrix(R).T)
    assert out.dtype == torch.float32
    assert _relative(out.double(), (m(x) @ m.irreps_out.D_from_matrix(R).T).double()) < 1e-5
    rot = nn.S2Activation("0e+1o+2e", torch.tanh, 40, random_rot=True, dtype=F64)
    assert _relative(rot(x.double()), m.double()(x.double())) < 1e-6  # same map, up to aliasing
    assert list(rot.state_dict()) == list(m.state_dict())  # e3nn's keys: the generators are not saved


def test_so3_activation_equivariance():
    """Left (D F) and right (F D^T) translations: exact about y by 2 pi k / na; < 1e-6 at resolution 8."""
    m = nn.SO3Activation(1, 1, torch.tanh, 8, dtype=F64)
    x = _randn(20, 10)
    D1 = o3.Irreps("1o").D_from_matrix

    def left(x, R):
        return torch.cat([x[:, :1], (D1(R) @ x[:, 1:].reshape(-1, 3, 3)).reshape(-1, 9)], 1)

    def right(x, R):
        return torch.cat([x[:, :1], (x[:, 1:].reshape(-1, 3, 3) @ D1(R).T).reshape(-1, 9)], 1)

    Ry = o3.matrix_y(torch.tensor(2 * math.pi * 3 / m.grid_in.res_alpha, dtype=F64))
    for act in (left, right):
        torch.testing.assert_close(m(act(x, Ry)), act(m(x), Ry), atol=1e-12, rtol=0)
        for seed in range(2):
            R = _rotation(seed)
            assert _relative(m(act(x, R)), act(m(x), R)) < 1e-6


def test_errors():
    with pytest.raises(InvalidArgumentError, match="one copy of each degree"):
        nn.S2Activation("0e+2e", torch.tanh, 10)
    with pytest.raises(InvalidArgumentError, match="one copy of each degree"):
        nn.S2Activation("2x0e+1x1o", torch.tanh, 10)
    with pytest.raises(InvalidArgumentError, match="parity of the input is not well defined"):
        nn.S2Activation("0e+1o+2o", torch.tanh, 10)
    with pytest.raises(InvalidArgumentError, match="parity is violated"):
        nn.S2Activation("0o+1e", torch.nn.functional.softplus, 10)
    with pytest.raises(InvalidArgumentError, match="too large for res_beta"):
        nn.S2Activation("0e+1o+2e+3o", torch.tanh, 6)
    with pytest.raises(InvalidArgumentError, match="res_beta must be even"):
        nn.S2Activation("0e+1o", torch.tanh, 9)
    with pytest.raises(InvalidArgumentError, match="expects inputs \\(..., 4\\)"):
        nn.S2Activation("0e+1o", torch.tanh, 10)(torch.zeros(3, 5))
    with pytest.raises(InvalidArgumentError, match="too large for resolution"):
        nn.SO3Activation(1, 4, torch.tanh, 4)
    with pytest.raises(AssertionError):  # what e3nn code catches
        nn.S2Activation("0e+1o", torch.tanh, 9)
