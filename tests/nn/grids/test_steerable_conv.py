"""SteerableConv2d / SteerableConv3d: exact grid equivariance, export, the regular case, init, errors."""
from __future__ import annotations

import math

import pytest
import torch

from equiscale.groups import C, D, O2, O3, SO2, SO3
from equiscale.nn.grids import GroupConv2d
from equiscale.nn.grids.field_type import FieldType
from equiscale.nn.grids.steerable import SteerableConv2d, SteerableConv3d, SteerableSequential
from equiscale.testing import GridField


def _planar_grid_elements(group):
    """Elements of ``group`` that map the square grid onto itself (quarter turns, axis flips)."""
    if group.is_finite:
        return [g for g in group.elements() if (4 * int(g % group.n)) % group.n == 0]
    out = []
    for k in range(4):
        c, s = round(math.cos(k * math.pi / 2)), round(math.sin(k * math.pi / 2))
        r = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        out.append(r)
        if isinstance(group, type(O2())):
            out.append(r @ torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64)))
    return out


def _cube_rotations(with_inversion: bool):
    """Quarter turns about x, y and z (and their products), optionally times -I."""
    quarter = [torch.tensor(m, dtype=torch.float64) for m in (
        [[1, 0, 0], [0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], [[0, -1, 0], [1, 0, 0], [0, 0, 1]])]
    out = quarter + [quarter[0] @ quarter[1], quarter[2] @ quarter[2] @ quarter[0]]
    if with_inversion:
        out += [-m for m in out[:3]] + [-torch.eye(3, dtype=torch.float64)]
    return out


@torch.no_grad()
def _max_equivariance_error(layer, group, elements, x, dims):
    y = layer(x)
    act_in = GridField(layer.in_type.representation, axis=1, ndim=dims)
    act_out = GridField(layer.out_type.representation, axis=1, ndim=dims)
    worst = 0.0
    for g in elements:
        gx = act_in.apply(group, g, x.double(), None).to(x.dtype)
        gy = act_out.apply(group, g, y.double(), None).to(x.dtype)
        worst = max(worst, float((layer(gx) - gy).abs().max() / y.abs().max()))
    return worst


PLANAR_CASES = {
    "C4-regular": lambda: (C(4), [C(4).regular_representation()] * 2, [C(4).regular_representation(), C(4).irrep(0)]),
    "C8-mixed": lambda: (C(8), [C(8).regular_representation(), C(8).irrep(1)], [C(8).irrep(2), C(8).irrep(0)] * 2),
    "D4-pseudo": lambda: (D(4), [D(4).irrep(1, 0), D(4).irrep(1, 1)], [D(4).regular_representation(), D(4).irrep(1, 1)]),
    "SO2-vectors": lambda: (SO2(), [SO2().irrep(0), SO2().irrep(1)], [SO2().irrep(1), SO2().irrep(2), SO2().irrep(0)]),
    "O2-vectors": lambda: (O2(), [O2().irrep(0, 0), O2().irrep(1, 1)], [O2().irrep(1, 1), O2().irrep(1, 0)]),
}


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("case", sorted(PLANAR_CASES))
def test_2d_exactly_equivariant_under_grid_symmetries(case, dtype, tolerance):
    torch.manual_seed(0)
    group, reps_in, reps_out = PLANAR_CASES[case]()
    layer = SteerableConv2d(FieldType(group, reps_in), FieldType(group, reps_out), 5, padding=2, dtype=dtype)
    with torch.no_grad():
        layer.bias.normal_() if layer.bias is not None else None
    x = torch.randn(2, layer.in_type.size, 9, 9, dtype=dtype)
    assert _max_equivariance_error(layer, group, _planar_grid_elements(group), x, 2) <= tolerance


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("group", [SO3(), O3()], ids=lambda g: g.name)
def test_3d_exactly_equivariant_under_cube_rotations(group, dtype, tolerance):
    torch.manual_seed(1)
    if group == SO3():
        reps_in, reps_out = [group.irrep(0), group.irrep(1)], [group.irrep(1), group.irrep(2), group.irrep(0)]
    else:
        reps_in, reps_out = [group.irrep(0, 1), group.irrep(1, -1)], [group.irrep(1, -1), group.irrep(1, 1)]
    layer = SteerableConv3d(FieldType(group, reps_in), FieldType(group, reps_out), 3, padding=1, dtype=dtype)
    x = torch.randn(1, layer.in_type.size, 7, 7, 7, dtype=dtype)
    assert _max_equivariance_error(layer, group, _cube_rotations(group == O3()), x, 3) <= tolerance


def test_stride_keeps_equivariance_on_centred_grids():
    group = C(4)
    layer = SteerableConv2d(FieldType(group, [group.irrep(0)]), FieldType(group, [group.irrep(1)]), 3, stride=2,
                            padding=1, dtype=torch.float64)
    x = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    assert layer(x).shape[-1] == 5
    assert _max_equivariance_error(layer, group, list(group.elements()), x, 2) <= 1e-12


def test_export_gives_the_same_outputs_2d_and_3d():
    torch.manual_seed(2)
    group = SO2()
    layer = SteerableConv2d(FieldType(group, [group.irrep(1)] * 2), FieldType(group, [group.irrep(0), group.irrep(1)]),
                            5, padding=2, padding_mode="circular")
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 4, 12, 12)
    plain = layer.export()
    assert type(plain) is torch.nn.Conv2d and plain.padding_mode == "circular"
    assert torch.allclose(plain(x), layer(x), atol=1e-6)
    layer3 = SteerableConv3d(FieldType(SO3(), [SO3().irrep(0)]), FieldType(SO3(), [SO3().irrep(1)]), 3, padding=1)
    x3 = torch.randn(1, 1, 6, 6, 6)
    plain3 = layer3.export()
    assert type(plain3) is torch.nn.Conv3d and plain3.bias is None  # a vector field has no invariant bias
    assert torch.allclose(plain3(x3), layer3(x3), atol=1e-6)


def test_regular_fields_of_c4_span_the_same_maps_as_group_conv():
    """With a ring on every pixel orbit of a 3x3 kernel, both layers span every C(4)-equivariant map."""
    group = C(4)
    regular = FieldType(group, [group.regular_representation()])
    steerable = SteerableConv2d(regular, regular, 3, bias=False, radii=[0, 1, math.sqrt(2)], sigma=0.3,
                                frequency_cutoff=3, max_frequency=3, dtype=torch.float64)
    group_conv = GroupConv2d(1, 1, 3, group, bias=False, dtype=torch.float64)

    def span(layer):
        rows = []
        for i in range(layer.weight.numel()):
            with torch.no_grad():
                layer.weight.zero_()
                layer.weight.view(-1)[i] = 1
                rows.append(layer.expand()[0].reshape(-1).clone())
        return torch.stack(rows)

    a, b = span(steerable), span(group_conv)
    rank = lambda m: int(torch.linalg.matrix_rank(m))  # noqa: E731
    assert rank(a) == rank(b) == rank(torch.cat([a, b])) == 36  # 4 (centre) + 16 (edges) + 16 (corners)


def test_frequency_cap_follows_the_grid():
    # SO(2) on a 5x5 kernel: J <= min(2 r, 2), so frequency 3 is out of reach (aliasing); C(4) has no cap.
    so2 = SO2()
    assert SteerableConv2d(FieldType(so2, [so2.irrep(0)]), FieldType(so2, [so2.irrep(2)]), 5).max_frequency == 2
    with pytest.raises(ValueError, match="needs angular frequency 3"):
        SteerableConv2d(FieldType(so2, [so2.irrep(0)]), FieldType(so2, [so2.irrep(3)]), 5)
    # A band-limited regular field is fine: C(8)'s irreps 3 and 4 would need J = 3, 4 > 2 from a scalar.
    c8 = C(8)
    lifting = SteerableConv2d(FieldType(c8, [c8.irrep(0)]), FieldType(c8, [c8.regular_representation()]), 5)
    assert {needed for _, _, needed in lifting.starved_outputs} == {3, 4}
    c4 = C(4)
    layer = SteerableConv2d(FieldType(c4, [c4.irrep(0)]), FieldType(c4, [c4.regular_representation()]), 3)
    assert layer.max_frequency is None  # the sign irrep needs J = 2 on the 3x3 grid: exact for quarter turns


def test_initialisation_gives_unit_output_variance():
    torch.manual_seed(3)
    group = C(8)
    in_type = FieldType(group, [group.regular_representation()] * 4 + [group.irrep(1)] * 3)
    out_type = FieldType(group, [group.regular_representation()] * 3 + [group.irrep(2)] * 4)
    layer = SteerableConv2d(in_type, out_type, 5, bias=False, dtype=torch.float64)
    x = torch.randn(4, in_type.size, 20, 20, dtype=torch.float64)
    variances = []
    for _ in range(20):
        layer.reset_parameters()
        with torch.no_grad():
            variances.append(layer(x).pow(2).mean())
    assert abs(float(torch.stack(variances).mean()) - 1.0) < 0.15


def test_filter_cache_serves_inference_and_follows_updates():
    group = C(4)
    layer = SteerableConv2d(FieldType(group, [group.regular_representation()]), FieldType(group, [group.irrep(1)]), 3)
    with torch.no_grad():
        first = layer.filter()[0]
        assert layer.filter()[0] is first
        layer.weight.mul_(2)
        assert torch.allclose(layer.filter()[0], 2 * first)
    layer(torch.randn(1, 4, 5, 5)).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_gradcheck():
    group = SO2()
    layer = SteerableConv2d(FieldType(group, [group.irrep(1)]), FieldType(group, [group.irrep(0), group.irrep(1)]), 3,
                            dtype=torch.float64)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,), fast_mode=True)


def test_bad_input_names_the_problem():
    c4, so2 = C(4), SO2()
    scalar = FieldType(c4, [c4.irrep(0)])
    with pytest.raises(ValueError, match="C\\(4\\).*SO\\(2\\)"):
        SteerableConv2d(scalar, FieldType(so2, [so2.irrep(1)]), 3)
    with pytest.raises(ValueError, match="field 0 .* is a representation of SO\\(2\\), the field type's group is C\\(4\\)"):
        FieldType(c4, [so2.irrep(1)])
    with pytest.raises(ValueError, match="too small for the requested frequencies.*needs angular frequency 3"):
        SteerableConv2d(FieldType(so2, [so2.irrep(3)]), FieldType(so2, [so2.irrep(0)]), 3)
    with pytest.raises(ValueError, match="acts on R\\^3"):
        SteerableConv2d(FieldType(SO3(), [SO3().irrep(0)]), FieldType(SO3(), [SO3().irrep(1)]), 3)
    layer = SteerableConv2d(scalar, FieldType(c4, [c4.irrep(1)]), 3, padding=1)
    with pytest.raises(ValueError, match="2 channels, in_type .* has 1"):
        layer(torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match="5x6.*equal sides"):
        layer(torch.randn(1, 1, 5, 6))
    strided = SteerableConv2d(scalar, scalar, 3, stride=2)
    with pytest.raises(ValueError, match="not centred"):
        strided(torch.randn(1, 1, 6, 6))
    with pytest.raises(ValueError, match="no O\\(2\\)-equivariant kernel"):
        SteerableConv2d(FieldType(O2(), [O2().irrep(0, 0)]), FieldType(O2(), [O2().irrep(1, 0)]), 5)


def test_sequential_checks_field_types_between_layers():
    group = C(4)
    a = FieldType(group, [group.irrep(0)])
    b = FieldType(group, [group.regular_representation()])
    c = FieldType(group, [group.irrep(1)])
    model = SteerableSequential(SteerableConv2d(a, b, 3, padding=1), SteerableConv2d(b, c, 3, padding=1))
    assert model(torch.randn(1, 1, 7, 7)).shape == (1, 2, 7, 7)
    with pytest.raises(ValueError, match="layer 1 expects .*irrep\\(1,\\).* layer 0 gives .*regular"):
        SteerableSequential(SteerableConv2d(a, b, 3), SteerableConv2d(c, a, 3))
