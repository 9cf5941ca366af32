"""Norm, gated and pointwise nonlinearities of steerable fields: equivariance at grid-exact elements of
C(4), D(4), SO(2), SO(3), O(3), agreement with per-field reference computations, and errors."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F

from equiscale.groups import C, D, O3, SO2, SO3
from equiscale.nn.grids.field_type import FieldType
from equiscale.nn.grids.steerable_nonlinear import GatedNonlinearity, NormNonlinearity, PointwiseNonlinearity
from equiscale.testing import GridField

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def _signed_permutations(dim: int, det: int | None) -> torch.Tensor:
    """Every signed permutation matrix ``(n, dim, dim)`` with the given determinant (any if None): grid-exact."""
    out = []
    for perm in itertools.permutations(range(dim)):
        for signs in itertools.product((1.0, -1.0), repeat=dim):
            m = torch.zeros(dim, dim, dtype=torch.float64)
            m[range(dim), perm] = torch.tensor(signs, dtype=torch.float64)
            if det is None or round(float(torch.linalg.det(m))) == det:
                out.append(m)
    return torch.stack(out)


@dataclass
class Case:
    """A group, its grid-exact elements, the grid dimension, a mixed field type and a permutation-type one."""

    name: str
    group: Any
    elements: Any
    ndim: int
    fields: list
    permutation_fields: list
    trivial: Any

    def field_type(self) -> FieldType:
        return FieldType(self.group, self.fields)

    def input(self, field_type: FieldType, dtype: torch.dtype, batch: int = 2, offset: float = 0.0) -> torch.Tensor:
        grid = (5, 5) if self.ndim == 2 else (4, 4, 4)
        return torch.randn(batch, field_type.size, *grid, dtype=dtype) + offset


def _cases() -> list[Case]:
    c4, d4, so2, so3, o3 = C(4), D(4), SO2(), SO3(), O3()
    reg4, regd4 = c4.regular_representation(), d4.regular_representation()
    return [
        Case("C4", c4, torch.arange(4), 2, [reg4, c4.irrep(0), c4.irrep(1), reg4, c4.irrep(0), c4.irrep(2)],
             [reg4, c4.irrep(0), reg4], c4.irrep(0)),
        Case("D4", d4, torch.arange(8), 2, [d4.irrep(1, 1), d4.irrep(1, 0), regd4, d4.irrep(1, 1), d4.irrep(0, 0)],
             [regd4, d4.irrep(0, 0)], d4.irrep(0, 0)),
        Case("SO2", so2, _signed_permutations(2, 1), 2, [so2.irrep(1), so2.irrep(2), so2.irrep(0), so2.irrep(1)],
             [so2.irrep(0), so2.irrep(0)], so2.irrep(0)),
        Case("SO3", so3, _signed_permutations(3, 1), 3, [so3.irrep(1), so3.irrep(2), so3.irrep(0), so3.irrep(1)],
             [so3.irrep(0)], so3.irrep(0)),
        Case("O3", o3, torch.cat([_signed_permutations(3, None)[::3], -torch.eye(3, dtype=torch.float64)[None]]), 3,
             [o3.irrep(1, -1), o3.irrep(0, -1), o3.irrep(1, 1), o3.irrep(0, 1), o3.irrep(1, -1)], [o3.irrep(0, 1)],
             o3.irrep(0, 1)),
    ]


CASES = _cases()
IDS = [case.name for case in CASES]


def equivariance_gap(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, case: Case, in_type: FieldType,
                     out_type: FieldType) -> float:
    """``max_g |fn(g.x) - g.fn(x)| / max|fn(x)|`` over the case's grid-exact elements."""
    act_in = GridField(in_type.representation, axis=1, ndim=case.ndim)
    act_out = GridField(out_type.representation, axis=1, ndim=case.ndim)
    with torch.no_grad():
        y = fn(x)
        worst = 0.0
        for g in case.elements:
            moved = act_in.apply(case.group, g, x.double(), None).to(x.dtype)
            expected = act_out.apply(case.group, g, y.double(), None)
            worst = max(worst, float((fn(moved).double() - expected).abs().max() / y.double().abs().max()))
    return worst


def test_o3_case_contains_the_inversion():
    elements = CASES[IDS.index("O3")].elements
    assert any(torch.equal(g, -torch.eye(3, dtype=torch.float64)) for g in elements)
    assert len(CASES[IDS.index("SO3")].elements) == 24


# --- equivariance ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_norm_nonlinearity_is_equivariant(case, dtype):
    torch.manual_seed(0)
    ft = case.field_type()
    layer = NormNonlinearity(ft, "relu").to(dtype)
    with torch.no_grad():
        layer.bias.uniform_(-1.0, 0.5)
    x = case.input(ft, dtype)
    assert equivariance_gap(layer, x, case, ft, ft) <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gated_nonlinearity_is_equivariant(case, dtype):
    torch.manual_seed(1)
    in_type = FieldType(case.group, case.fields + [case.trivial] * len(case.fields))
    layer = GatedNonlinearity(in_type, len(case.fields))
    assert layer.out_type == case.field_type()
    x = case.input(in_type, dtype)
    assert equivariance_gap(layer, x, case, in_type, layer.out_type) <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pointwise_nonlinearity_is_equivariant_on_permutation_fields(case, dtype):
    torch.manual_seed(2)
    ft = FieldType(case.group, case.permutation_fields)
    layer = PointwiseNonlinearity(ft, "elu")
    x = case.input(ft, dtype)
    assert equivariance_gap(layer, x, case, ft, ft) <= TOLERANCE[dtype]


def test_the_equivariance_check_can_fail():
    """Elementwise ReLU on SO(2) vectors, the norm nonlinearity's naive alternative, is caught."""
    torch.manual_seed(3)
    case = CASES[IDS.index("SO2")]
    ft = case.field_type()
    assert equivariance_gap(F.relu, case.input(ft, torch.float64), case, ft, ft) > 1e-2


# --- agreement with per-field references ---------------------------------------------------------
@pytest.mark.parametrize("function", ["relu", "sigmoid", "softplus", torch.tanh])
def test_norm_nonlinearity_matches_a_per_field_loop(function):
    torch.manual_seed(4)
    case = CASES[IDS.index("D4")]
    ft = case.field_type()
    layer = NormNonlinearity(ft, function).double()
    with torch.no_grad():
        layer.bias.uniform_(-1.0, 1.0)
    phi = {"relu": F.relu, "sigmoid": torch.sigmoid, "softplus": F.softplus}.get(function, function)
    x = case.input(ft, torch.float64)
    expected = torch.cat([x[:, s] * phi(x[:, s].norm(dim=1, keepdim=True) + b) / x[:, s].norm(dim=1, keepdim=True)
                          for s, b in zip(ft.slices, layer.bias)], dim=1)
    assert layer._permutation is not None  # the fields are interleaved: the gather path is tested
    torch.testing.assert_close(layer(x), expected, rtol=1e-13, atol=1e-13)


def test_norm_nonlinearity_groups_equal_dimensions_and_has_no_channel_loop():
    so2 = SO2()
    vectors = [so2.irrep(1) for _ in range(64)]  # 64 distinct objects of the same dimension
    layer = NormNonlinearity(FieldType(so2, vectors))
    assert layer._layout.groups == [list(range(64))] and layer._permutation is None
    mixed = NormNonlinearity(FieldType(so2, [so2.irrep(0), so2.irrep(1)] * 8))
    assert [len(g) for g in mixed._layout.groups] == [8, 8]


@pytest.mark.parametrize("function", ["relu", "sigmoid", "softplus"])
def test_norm_nonlinearity_gradient_is_finite_at_zero(function):
    ft = CASES[IDS.index("SO3")].field_type()
    layer = NormNonlinearity(ft, function)
    x = torch.zeros(2, ft.size, 3, 3, 3, requires_grad=True)
    with torch.no_grad():  # one field nonzero at one point, the rest exactly zero
        x[0, :3, 1, 1, 1] = torch.tensor([0.3, -0.4, 1.2])
    y = layer(x)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all() and torch.isfinite(layer.bias.grad).all()
    assert x.grad.abs().max() < 1e9


def test_gated_nonlinearity_by_hand():
    so2 = SO2()
    in_type = FieldType(so2, [so2.irrep(1), so2.irrep(0), so2.irrep(0), so2.irrep(0)])
    layer = GatedNonlinearity(in_type, 2)
    x = torch.tensor([1.0, -2.0, 3.0, 0.5, -1.5], dtype=torch.float64).view(1, 5, 1, 1)
    s1, s2 = torch.sigmoid(torch.tensor([0.5, -1.5], dtype=torch.float64))
    expected = torch.stack([1.0 * s1, -2.0 * s1, 3.0 * s2]).view(1, 3, 1, 1)
    torch.testing.assert_close(layer(x), expected, rtol=1e-15, atol=0)
    assert layer.out_type.size == 3 and len(layer.out_type) == 2
    scalars = GatedNonlinearity(FieldType(so2, [so2.irrep(0)] * 4), 2, function=torch.tanh)
    torch.testing.assert_close(scalars(x[:, 1:]), x[:, 1:3] * torch.tanh(x[:, 3:]))


def test_layers_work_without_a_grid_and_on_3d_grids():
    so3 = SO3()
    ft = FieldType(so3, [so3.irrep(1), so3.irrep(0)])
    assert NormNonlinearity(ft)(torch.randn(4, 4)).shape == (4, 4)
    assert GatedNonlinearity(FieldType(so3, [so3.irrep(1), so3.irrep(0)]), 1)(torch.randn(2, 4, 3, 3, 3)).shape == \
        (2, 3, 3, 3, 3)


def test_reprs_name_the_types_and_functions():
    c4 = C(4)
    ft = FieldType(c4, [c4.regular_representation()])
    assert "function=sigmoid" in repr(NormNonlinearity(ft, "sigmoid")) and "C(4)" in repr(NormNonlinearity(ft))
    assert "function=relu" in repr(PointwiseNonlinearity(ft))
    assert "num_gated=1" in repr(GatedNonlinearity(FieldType(c4, [c4.irrep(1), c4.irrep(0)]), 1))


# --- errors --------------------------------------------------------------------------------------
def test_pointwise_rejects_fields_that_are_not_permutations():
    so2, d4, o3 = SO2(), D(4), O3()
    with pytest.raises(ValueError, match=r"field 1 \(SO\(2\) irrep\(1,\).*NormNonlinearity"):
        PointwiseNonlinearity(FieldType(so2, [so2.irrep(0), so2.irrep(1)]))
    with pytest.raises(ValueError, match=r"field 2 .*irrep\(1, 0\)"):
        PointwiseNonlinearity(FieldType(d4, [d4.regular_representation(), d4.irrep(0, 0), d4.irrep(1, 0)]))
    with pytest.raises(ValueError, match="field 0"):
        PointwiseNonlinearity(FieldType(o3, [o3.irrep(0, -1)]))  # a pseudo-scalar flips sign under -I
    with pytest.raises(ValueError, match="unknown function"):
        PointwiseNonlinearity(FieldType(so2, [so2.irrep(0)]), "swish")


def test_gated_rejects_bad_gates_and_counts():
    so2, o3 = SO2(), O3()
    with pytest.raises(ValueError, match=r"gate field 1 \(O\(3\) irrep\(0, -1\)"):
        GatedNonlinearity(FieldType(o3, [o3.irrep(1, -1), o3.irrep(0, -1)]), 1)
    with pytest.raises(ValueError, match=r"gate field 2 .*dim 2"):
        GatedNonlinearity(FieldType(so2, [so2.irrep(1), so2.irrep(2), so2.irrep(1), so2.irrep(0)]), 2)
    with pytest.raises(ValueError, match="3 fields.*num_gated=1"):
        GatedNonlinearity(FieldType(so2, [so2.irrep(1), so2.irrep(0), so2.irrep(0)]), 1)
    with pytest.raises(ValueError, match="positive int"):
        GatedNonlinearity(FieldType(so2, [so2.irrep(1), so2.irrep(0)]), 0)


def test_norm_nonlinearity_rejects_an_identity_and_bad_arguments():
    so2 = SO2()
    ft = FieldType(so2, [so2.irrep(1)])
    with pytest.raises(ValueError, match="identity"):
        NormNonlinearity(ft, "relu", bias=False)
    with pytest.raises(ValueError, match="eps"):
        NormNonlinearity(ft, eps=0.0)
    with pytest.raises(ValueError, match="FieldType"):
        NormNonlinearity([so2.irrep(1)])
    assert NormNonlinearity(ft, "sigmoid", bias=False).bias is None


@pytest.mark.parametrize("make", [
    lambda ft: NormNonlinearity(ft),
    lambda ft: GatedNonlinearity(ft, 1),
    lambda ft: PointwiseNonlinearity(FieldType(ft.group, [ft.group.irrep(0)] * 4)),
])
def test_wrong_input_shapes_raise(make):
    so2 = SO2()
    layer = make(FieldType(so2, [so2.irrep(1), so2.irrep(0)]))
    size = layer.in_type.size
    with pytest.raises(ValueError, match=rf"input has {size + 1} channels.*has {size}"):
        layer(torch.randn(2, size + 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(batch, \d+ channels, \*grid\)"):
        layer(torch.randn(size))
    with pytest.raises(ValueError, match="floating point"):
        layer(torch.ones(2, size, 4, 4, dtype=torch.long))
