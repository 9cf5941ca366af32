"""e3nn's ``nn`` and ``math`` names in equiscale.nn, checked against e3nn 0.6 on random inputs.

Numbers in float32 and float64 (e3nn's float64 references built with float64 as the default dtype,
restored after), state-dict keys both ways, e3nn's assertions caught as AssertionError and
ValueError, and O(3) equivariance in float64 for the layers that promise it.
"""
from __future__ import annotations

import contextlib
import inspect

import pytest
import torch
import torch.nn.functional as F

from equiscale.errors import InvalidArgumentError
from equiscale.nn import (
    Activation,
    BatchNorm,
    Dropout,
    Extract,
    ExtractIr,
    FullyConnectedNet,
    Gate,
    Identity,
    NormActivation,
    bessel,
    moment,
    normalize2mom,
    soft_one_hot_linspace,
    soft_unit_step,
)
from equiscale.testing import assert_equivariant

e3nn = pytest.importorskip("e3nn")
from e3nn import math as e3nn_math  # noqa: E402
from e3nn import nn as e3nn_nn  # noqa: E402
from e3nn import o3 as e3nn_o3  # noqa: E402

DTYPES = [torch.float32, torch.float64]
BASES = ["gaussian", "cosine", "smooth_finite", "fourier", "bessel"]


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """e3nn builds its constants in the default dtype: build float64 references under float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def tol(dtype: torch.dtype) -> dict:
    return {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-6, "atol": 1e-6}


# --- signatures -----------------------------------------------------------------------------

OURS_AND_THEIRS = [
    (FullyConnectedNet, e3nn_nn.FullyConnectedNet), (BatchNorm, e3nn_nn.BatchNorm), (Dropout, e3nn_nn.Dropout),
    (Extract, e3nn_nn.Extract), (ExtractIr, e3nn_nn.ExtractIr), (Identity, e3nn_nn.Identity),
    (Activation, e3nn_nn.Activation), (Gate, e3nn_nn.Gate), (NormActivation, e3nn_nn.NormActivation),
    (normalize2mom, e3nn_math.normalize2mom), (moment, e3nn_math.moment), (bessel, e3nn_math.bessel),
    (soft_one_hot_linspace, e3nn_math.soft_one_hot_linspace), (soft_unit_step, e3nn_math.soft_unit_step),
]


def _arguments(f) -> list[tuple[str, object]]:
    f = f.__init__ if isinstance(f, type) else f
    return [(p.name, p.default) for p in inspect.signature(f).parameters.values()]


@pytest.mark.parametrize("pair", OURS_AND_THEIRS, ids=lambda p: p[0].__name__)
def test_same_arguments_and_defaults_as_e3nn(pair):
    ours, theirs = pair
    assert _arguments(ours) == _arguments(theirs)
    if isinstance(ours, type):
        assert _arguments(ours.forward) == _arguments(theirs.forward)


# --- math: soft_unit_step, soft_one_hot_linspace, moment -------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_unit_step_matches_e3nn_with_its_derivative(dtype, generator):
    x = torch.cat([torch.randn(200, generator=generator, dtype=dtype) * 3, torch.zeros(1, dtype=dtype)])
    ours_x, theirs_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = soft_unit_step(ours_x), e3nn_math.soft_unit_step(theirs_x)
    torch.testing.assert_close(ours, theirs, **tol(dtype))
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(ours_x.grad, theirs_x.grad, **tol(dtype))
    assert ours[-1] == 0 and ours_x.grad[-1] == 0


def test_soft_unit_step_is_smooth_to_second_order(generator):
    x = torch.randn(20, generator=generator, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(soft_unit_step, (x,))
    assert torch.autograd.gradgradcheck(soft_unit_step, (x,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cutoff", [True, False])
@pytest.mark.parametrize("basis", BASES)
def test_soft_one_hot_linspace_matches_e3nn(basis, cutoff, dtype, generator):
    x = torch.rand(3, 50, generator=generator, dtype=dtype) * 3 - 1  # beyond both ends of [-0.5, 1.5]
    with default_dtype(dtype):
        theirs = e3nn_math.soft_one_hot_linspace(x, -0.5, 1.5, number=6, basis=basis, cutoff=cutoff)
    ours = soft_one_hot_linspace(x, -0.5, 1.5, number=6, basis=basis, cutoff=cutoff)
    assert ours.shape == (3, 50, 6) and ours.dtype == dtype
    # smooth_finite: e3nn's e^2 is a float32 constant (~3e-8 relative), ours is exact
    options = {"rtol": 1e-7, "atol": 1e-7} if basis == "smooth_finite" and dtype == torch.float64 else tol(dtype)
    torch.testing.assert_close(ours, theirs, **options)


def test_soft_one_hot_linspace_positional_arguments_and_bessel_at_start():
    x = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    torch.testing.assert_close(soft_one_hot_linspace(x, 0.0, 1.0, 4, "gaussian", True),
                               e3nn_math.soft_one_hot_linspace(x, 0.0, 1.0, 4, "gaussian", True), rtol=1e-12, atol=1e-12)
    bessel = soft_one_hot_linspace(x, 0.0, 2.0, 3, "bessel", False)
    assert torch.isfinite(bessel).all()  # e3nn gives NaN (0/0) at x == start: we give the limit
    torch.testing.assert_close(bessel[0], (torch.arange(1, 4, dtype=torch.float64) * torch.pi / 2) * 1.0, rtol=1e-14, atol=0)
    torch.testing.assert_close(bessel[1:], e3nn_math.soft_one_hot_linspace(x, 0.0, 2.0, 3, "bessel", False)[1:])


def test_soft_one_hot_linspace_errors():
    x = torch.rand(4)
    with pytest.raises(ValueError, match="cutoff must be specified"):  # e3nn raises ValueError here
        soft_one_hot_linspace(x, 0.0, 1.0, 3, basis="gaussian")
    with pytest.raises(InvalidArgumentError, match='basis="cosinus" is not a valid entry'):
        soft_one_hot_linspace(x, 0.0, 1.0, 3, basis="cosinus", cutoff=False)
    with pytest.raises(InvalidArgumentError, match="number must be at least 2"):
        soft_one_hot_linspace(x, 0.0, 1.0, 1, basis="gaussian", cutoff=False)
    with pytest.raises(InvalidArgumentError, match="end"):
        soft_one_hot_linspace(x, 1.0, 0.0, 3, basis="gaussian", cutoff=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bessel_matches_e3nn_and_is_finite_at_zero(dtype, generator):
    x = torch.cat([torch.zeros(1, dtype=dtype), torch.rand(60, generator=generator, dtype=dtype) * 3])
    with default_dtype(dtype):
        theirs = e3nn_math.bessel(x, 6, 2.5)
    ours = bessel(x, 6, 2.5)
    assert ours.shape == (61, 6) and ours.dtype == dtype
    torch.testing.assert_close(ours, theirs, **({"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {}))
    x64 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bessel(t, 3), (x64,))
    with pytest.raises(InvalidArgumentError, match="n must be a positive int"):
        bessel(x, 0)


def test_moment_matches_e3nn():
    for f in (torch.tanh, F.silu, torch.abs):
        torch.testing.assert_close(moment(f, 2, dtype=torch.float64), e3nn_math.moment(f, 2, dtype=torch.float64), rtol=0, atol=0)
    assert moment(torch.tanh, 3).dtype == torch.get_default_dtype()


# --- FullyConnectedNet ----------------------------------------------------------------------

FC_CASES = [
    ([5, 16, 16, 3], F.silu, {}),
    ([4, 8, 2], torch.tanh, {"variance_in": 2.0, "variance_out": 3.0, "out_act": True}),
    ([6, 7], None, {"variance_in": 4.0}),
    ([3, 9, 1], torch.abs, {"out_act": False, "variance_out": 0.5}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", FC_CASES, ids=lambda c: str(c[0]))
def test_fully_connected_net_matches_e3nn(case, dtype, generator):
    hs, act, options = case
    torch.manual_seed(7)
    ours = FullyConnectedNet(hs, act, **options)
    with default_dtype(dtype):
        torch.manual_seed(7)
        theirs = e3nn_nn.FullyConnectedNet(hs, act, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == [f"layer{i}.weight" for i in range(len(hs) - 1)]
    assert repr(ours) == repr(theirs)
    if dtype == torch.float32:  # the same weights under the same seed
        for key, value in theirs.state_dict().items():
            torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    ours = ours.to(dtype)
    ours.load_state_dict(theirs.state_dict())  # e3nn's state dict loads strictly
    x = torch.randn(10, hs[0], generator=generator, dtype=dtype)
    torch.testing.assert_close(ours(x), theirs(x), **tol(dtype))


def test_fully_connected_net_errors():
    with pytest.raises(InvalidArgumentError, match="hs must be a non-empty list of positive ints"):
        FullyConnectedNet([4, 0, 2], F.silu)
    with pytest.raises(InvalidArgumentError, match=r"input must have shape \(\.\.\., 4\)"):
        FullyConnectedNet([4, 2])(torch.randn(3, 5))


# --- BatchNorm ------------------------------------------------------------------------------

BN_IRREPS = "3x0e+2x1o+0o+1x2e+2x0e"
BN_OPTIONS = [
    {},
    {"instance": True},
    {"reduce": "max", "normalization": "norm"},
    {"instance": True, "reduce": "max"},
    {"affine": False},
    {"include_bias": False, "momentum": 0.3, "eps": 1e-3},
]


def _paired_batchnorms(dtype: torch.dtype, options: dict, generator: torch.Generator):
    ours = BatchNorm(BN_IRREPS, **options).to(dtype)
    with default_dtype(dtype):
        theirs = e3nn_nn.BatchNorm(e3nn_o3.Irreps(BN_IRREPS), **options)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=dtype))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", BN_OPTIONS, ids=str)
def test_batchnorm_matches_e3nn_in_train_and_eval(options, dtype, generator):
    ours, theirs = _paired_batchnorms(dtype, options, generator)
    for step in range(3):  # training updates the running statistics
        x = torch.randn(4, 5, 2, ours.irreps.dim, generator=generator, dtype=dtype) + step
        torch.testing.assert_close(ours(x), theirs(x), **tol(dtype))
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, **tol(dtype))
    ours.eval(), theirs.eval()
    x = torch.randn(3, 7, ours.irreps.dim, generator=generator, dtype=dtype)
    torch.testing.assert_close(ours(x), theirs(x), **tol(dtype))


@pytest.mark.parametrize("mode", ["train", "eval", "instance"])
def test_batchnorm_is_equivariant_in_float64(mode, o3_group, generator):
    layer = BatchNorm(BN_IRREPS, instance=mode == "instance", reduce="max" if mode == "instance" else "mean").double()
    with torch.no_grad():
        for tensor in [*layer.parameters(), *layer.buffers()]:
            tensor.copy_(torch.rand(tensor.shape, generator=generator, dtype=torch.float64) + 0.5)
    layer.train(mode != "eval")
    x = torch.randn(4, 6, layer.irreps.dim, generator=generator, dtype=torch.float64)
    assert_equivariant(layer, x, o3_group, BN_IRREPS, BN_IRREPS, generator=generator, tolerance=1e-10)
    assert_equivariant(layer.float(), x.float(), o3_group, BN_IRREPS, BN_IRREPS, generator=generator)


def test_batchnorm_errors_are_assertion_and_value_errors():
    with pytest.raises(AssertionError, match="reduce needs to be 'mean' or 'max'"):  # e3nn asserts here
        BatchNorm("2x0e", reduce="sum")
    with pytest.raises(ValueError, match="normalization needs to be 'norm' or 'component'"):
        BatchNorm("2x0e", normalization="l2")
    with pytest.raises(InvalidArgumentError, match=r"input must have shape \(batch, \.\.\., 5\)"):
        BatchNorm("2x0e+1o")(torch.randn(4, 6))


# --- Dropout --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_matches_e3nn_under_the_same_seed(dtype, generator):
    irreps = "2x0e+3x1o+1x2e"
    ours, theirs = Dropout(irreps, 0.4), e3nn_nn.Dropout(irreps, 0.4)
    assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
    x = torch.randn(6, 4, ours.irreps.dim, generator=generator, dtype=dtype)
    torch.manual_seed(11)
    y = ours(x)
    torch.manual_seed(11)
    torch.testing.assert_close(y, theirs(x), rtol=0, atol=0)
    # whole irreps are dropped, the same for every sample of a batch element; kept ones scaled by 1 / (1 - p)
    kept = y != 0
    for block in [*kept[..., 2:11].split(3, dim=-1), kept[..., 11:]]:
        assert (block == block[:, :1, :1]).all()
    assert (kept[..., :2] == kept[:, :1, :2]).all() and 0 < kept.sum() < kept.numel()
    torch.testing.assert_close(y[kept], x[kept] / 0.6)
    ours.eval()
    assert ours(x) is x


def test_dropout_edges_and_errors():
    x = torch.randn(3, 4)
    assert torch.equal(Dropout("1o+0e", 0.0)(x), x)
    assert torch.equal(Dropout("1o+0e", 1.0)(x), torch.zeros_like(x))
    with pytest.raises(InvalidArgumentError, match=r"p must be a probability in \[0, 1\]"):
        Dropout("1o", 1.5)
    with pytest.raises(InvalidArgumentError, match=r"x must have shape \(batch, \.\.\., 3\)"):
        Dropout("1o", 0.5)(torch.randn(3, 4))


@pytest.mark.parametrize("mode", ["eval", "fixed mask"])
def test_dropout_is_equivariant_in_float64(mode, o3_group, generator):
    irreps = "2x0e+0o+2x1o+1x2e+1x3o"
    layer = Dropout(irreps, 0.5).train(mode != "eval")

    def fixed_mask(x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(5)  # the same mask for x and for g.x
        return layer(x)

    x = torch.randn(8, 3, layer.irreps.dim, generator=generator, dtype=torch.float64)
    assert_equivariant(fixed_mask, x, o3_group, irreps, irreps, generator=generator, tolerance=1e-10)


# --- Extract, ExtractIr, Identity -----------------------------------------------------------

EXTRACT_CASES = [
    ("1e+0e+0e", ["0e", "0e"], [(1,), (2,)]),
    ("2x0e+1o+3x2e+0o", ["3x2e+2x0e", "0o+1o", ""], [(2, 0), (3, 1), ()]),
    ("1o+1o", ["1o+1o"], [(0, 1)]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", EXTRACT_CASES, ids=lambda c: c[0])
def test_extract_matches_e3nn(case, dtype, generator):
    ours, theirs = Extract(*case), e3nn_nn.Extract(*case)
    x = torch.randn(5, 2, ours.irreps_in.dim, generator=generator, dtype=dtype, requires_grad=True)
    out_ours, out_theirs = ours(x), theirs(x)
    assert isinstance(out_ours, tuple) and len(out_ours) == len(out_theirs)
    for a, b in zip(out_ours, out_theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert a.numel() == 0 or a.data_ptr() != x.data_ptr()  # a new tensor, as e3nn's
    sum(o.sum() for o in out_ours).backward()
    assert x.grad is not None
    assert ours.state_dict().keys() == theirs.state_dict().keys()


def test_extract_ir_matches_e3nn(generator):
    irreps = "0e+2x1o+1e+0e+3x1o"
    ours, theirs = ExtractIr(irreps, "1o"), e3nn_nn.ExtractIr(irreps, "1o")
    assert str(ours.irreps_out) == str(theirs.irreps_out) == "2x1o+3x1o"
    x = torch.randn(4, ours.irreps_in.dim, generator=generator)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    assert ExtractIr(irreps, "2e")(x).shape == (4, 0)
    assert torch.equal(Extract("1e+0e+0e", ["0e"], [(2,)], squeeze_out=True)(torch.arange(5.0)), torch.tensor([4.0]))


def test_extract_is_equivariant_in_float64(o3_group, generator):
    case = EXTRACT_CASES[1]
    layer = Extract(case[0], case[1][:2], case[2][:2])
    x = torch.randn(5, layer.irreps_in.dim, generator=generator, dtype=torch.float64)
    assert_equivariant(layer, x, o3_group, case[0], tuple(case[1][:2]), generator=generator, tolerance=1e-12)
    pick = ExtractIr("0e+2x1o+1e+3x1o", "1o")
    x = torch.randn(5, pick.irreps_in.dim, generator=generator, dtype=torch.float64)
    assert_equivariant(pick, x, o3_group, "0e+2x1o+1e+3x1o", "5x1o", generator=generator, tolerance=1e-12)


def test_extract_errors_are_assertion_errors():
    with pytest.raises(AssertionError, match="1 irreps_outs but 2 instructions"):
        Extract("0e+1o", ["0e"], [(0,), (1,)])
    with pytest.raises(AssertionError, match=r"output 0 has 2 entries"):
        Extract("0e+1o", ["0e+1o"], [(0,)])
    with pytest.raises(ValueError, match="dimensions differ"):
        Extract("0e+1o", ["1o"], [(0,)])
    with pytest.raises(InvalidArgumentError, match="out of range"):
        Extract("0e+1o", ["1o"], [(2,)])
    with pytest.raises(InvalidArgumentError, match=r"input must have shape \(\.\.\., 4\)"):
        Extract("0e+1o", ["1o"], [(1,)])(torch.randn(3))


def test_identity_matches_e3nn():
    ours, theirs = Identity("0e+0e+1o", "2x0e+1o"), e3nn_nn.Identity("0e+0e+1o", "2x0e+1o")
    assert repr(ours) == repr(theirs)
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)
    x = torch.randn(3, 5)
    assert ours(x) is x
    with pytest.raises(AssertionError, match="Identity needs equal irreps"):  # e3nn asserts here
        Identity("0e", "0o")
    assert Identity("", "").state_dict()["output_mask"].shape == (0,)


# --- empty irreps and zero multiplicities (where e3nn works, the same; where it fails, (..., 0)) ----


def test_zero_multiplicities_and_empty_irreps(generator):
    x = torch.randn(4, 2, 3, generator=generator)
    with_zero, plain = BatchNorm("0x0e+1o+0x2e"), BatchNorm("1o")  # e3nn cannot reshape a 0x block
    for mode in (True, False):
        with_zero.train(mode), plain.train(mode)
        torch.testing.assert_close(with_zero(x), plain(x), rtol=0, atol=0)
    assert BatchNorm("")(torch.randn(4, 2, 0)).shape == (4, 2, 0)
    assert BatchNorm("0x0e+1o").running_mean.shape == (0,)
    assert Dropout("", 0.5)(torch.randn(4, 0)).shape == (4, 0)  # e3nn: torch.cat of nothing
    assert Identity("", "").output_mask.shape == (0,)
    gate, reference = Gate("0x0e+3x0e", [torch.tanh, torch.tanh], "0x0e", [torch.tanh], "0x1o"), Gate("3x0e", [torch.tanh], "", [], "")
    torch.testing.assert_close(gate(x[0]), reference(x[0]))  # e3nn: max() of an empty sequence
    for irreps, acts in (("0x0e+2x0e+1x0e", [torch.tanh, torch.tanh, None]), ("", [])):
        x = torch.randn(4, o3_dim(irreps), generator=generator)
        torch.testing.assert_close(Activation(irreps, acts)(x), e3nn_nn.Activation(irreps, acts)(x))
    x = torch.randn(4, 3, generator=generator)
    torch.testing.assert_close(NormActivation("0x1o+1o", torch.sigmoid)(x),
                               e3nn_nn.NormActivation(e3nn_o3.Irreps("0x1o+1o"), torch.sigmoid)(x))
    torch.testing.assert_close(Extract("0x1o+1o", ["0x1o", "1o"], [(0,), (1,)])(x)[1], x)


def o3_dim(irreps: str) -> int:
    return e3nn_o3.Irreps(irreps).dim


# --- Activation, Gate, NormActivation: exactly e3nn's --------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_matches_e3nn_in_both_dtypes_and_along_any_dim(dtype, generator):
    irreps, acts = "4x0e+3x0o+2x1o+2x0o", [F.silu, torch.abs, None, torch.tanh]
    ours = Activation(irreps, acts)
    with default_dtype(dtype):
        theirs = e3nn_nn.Activation(irreps, acts)
    assert repr(ours) == repr(theirs)
    x = torch.randn(7, ours.irreps_in.dim, 3, generator=generator, dtype=dtype)
    torch.testing.assert_close(ours(x, dim=1), theirs(x, dim=1), **tol(dtype))
    torch.testing.assert_close(ours(x.transpose(1, 2)), theirs(x.transpose(1, 2)), **tol(dtype))
    with pytest.raises(InvalidArgumentError, match="components along dim -1"):
        ours(x)


class ScaledTanh(torch.nn.Module):
    """An activation with a parameter (e3nn cannot normalise torch's PReLU: it mixes dtypes)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.weight * x)


def test_activation_state_dict_moves_both_ways():
    irreps = "2x0e+1x1o+3x0o"
    ours = Activation(irreps, [ScaledTanh(), None, ScaledTanh()])
    theirs = e3nn_nn.Activation(irreps, [ScaledTanh(), None, ScaledTanh()])
    assert str(ours.irreps_out) == str(theirs.irreps_out)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["acts.0.f.weight", "acts.2.f.weight"]
    assert [a.cst for a in ours.acts if hasattr(a, "cst")] == [a.cst for a in theirs.acts if a is not None]
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    assert Activation("", [])(torch.randn(3, 0)).shape == (3, 0)
    prelu = Activation("2x0e", [torch.nn.PReLU()])  # e3nn cannot normalise it (float64 samples, float32 weight)
    assert abs(prelu.acts[0].cst - (0.5 * (1 + 0.25**2)) ** -0.5) < 5e-3  # PReLU starts as 0.25 x for x < 0


GATE_CASES = [
    ("16x0e", [torch.relu], "8x0e+8x0o", [torch.sigmoid, torch.tanh], "16x1o"),
    ("4x0e+3x0o", [F.silu, torch.tanh], "2x0o+2x0e+1x0e", [torch.abs, torch.sigmoid, torch.tanh], "2x1e+2x2o+1x1o"),
    ("8x0e", [F.silu], "", [], ""),
]


@pytest.mark.parametrize("case", GATE_CASES, ids=lambda c: f"{c[0]}|{c[2]}|{c[4]}")
def test_gate_state_dict_and_float64_numbers_match_e3nn(case, generator):
    ours = Gate(*case)
    with default_dtype(torch.float64):
        theirs = e3nn_nn.Gate(*case)
    assert repr(ours) == repr(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(6, ours.irreps_in.dim, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)


def test_state_dicts_saved_without_e3nn_constants_still_load():
    gate = Gate(*GATE_CASES[1])
    state = {k: v for k, v in gate.state_dict().items() if not k.startswith("mul.")}
    gate.load_state_dict(state)  # e.g. a checkpoint written before Gate held e3nn's `mul`
    layer = NormActivation("2x1o+0e", torch.sigmoid, bias=True)
    with torch.no_grad():
        layer.biases.fill_(0.5)
    fresh = NormActivation("2x1o+0e", torch.sigmoid, bias=True)
    fresh.load_state_dict({"biases": layer.biases.detach().clone()})
    assert torch.equal(fresh.biases, layer.biases)
    with pytest.raises(RuntimeError, match="biases"):
        fresh.load_state_dict({})  # a learnt entry is still required


def test_gate_errors_are_value_errors_as_in_e3nn():
    with pytest.raises(ValueError, match="irreps_gates must be scalars"):
        Gate("2x0e", [torch.tanh], "1x1o", [torch.tanh], "1x1o")
    with pytest.raises(InvalidArgumentError, match="must match"):
        Gate("2x0e", [torch.tanh], "2x0e", [torch.tanh], "1x1o")


@pytest.mark.parametrize("options", [{}, {"bias": True}, {"epsilon": 0.3}], ids=str)
def test_norm_activation_float64_numbers_match_e3nn(options, generator):
    irreps = "3x0e+2x1o+1x2e+0o"
    ours = NormActivation(irreps, torch.sigmoid, **options).double()
    with default_dtype(torch.float64):
        theirs = e3nn_nn.NormActivation(e3nn_o3.Irreps(irreps), torch.sigmoid, **options)
        if options.get("bias"):
            with torch.no_grad():
                theirs.biases.normal_(generator=generator)
                ours.biases.copy_(theirs.biases)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(8, ours.irreps_in.dim, generator=generator, dtype=torch.float64)
    x[0, 3:9] = 0.0
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)
