"""Equivariant batch norm of steerable fields: equivariance in train and eval mode, statistics, the
agreement with torch's BatchNorm on scalars and with a per-field reference, and errors."""
from __future__ import annotations

import pytest
import torch

from equiscale.groups import C, SO2, SO3
from equiscale.nn.grids.field_type import FieldType, invariant_vectors
from equiscale.nn.grids.steerable_nonlinear import GatedNonlinearity, NormNonlinearity
from equiscale.nn.grids.steerable_norm import SteerableBatchNorm

from .test_steerable_nonlinear import CASES, IDS, TOLERANCE, equivariance_gap


def _trained(field_type: FieldType, case, dtype: torch.dtype, steps: int = 3) -> SteerableBatchNorm:
    """A batch norm with random affine parameters and running statistics from a few training batches."""
    norm = SteerableBatchNorm(field_type, momentum=0.3).to(dtype)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
        for _ in range(steps):
            norm(2 * case.input(field_type, dtype, batch=3, offset=1.0))
    return norm


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_batch_norm_is_equivariant(case, dtype, training):
    torch.manual_seed(0)
    ft = case.field_type()
    norm = _trained(ft, case, dtype)
    assert norm.num_batches_tracked == 3
    if norm.num_invariant:
        assert norm.running_mean.abs().min() > 0.05  # non-trivial running statistics
    assert (norm.running_var - 1).abs().max() > 0.5
    norm.train(training)
    x = 2 * case.input(ft, dtype, batch=3, offset=1.0)
    assert equivariance_gap(norm, x, case, ft, ft) <= TOLERANCE[dtype]


def test_the_equivariance_check_catches_a_per_channel_batch_norm():
    """In eval mode the running mean of every channel is subtracted, also where the group moves it. (In
    training, the batch mean moves with the input, and per-channel statistics are permuted along with the
    channels by a signed permutation: only SO(3)'s irrep(2), whose matrices mix channels, breaks it.)"""
    torch.manual_seed(1)
    case = CASES[IDS.index("SO2")]
    ft = case.field_type()
    plain = torch.nn.BatchNorm2d(ft.size).double()
    with torch.no_grad():
        for _ in range(3):
            plain(case.input(ft, torch.float64, offset=1.0))
    assert equivariance_gap(plain.eval(), case.input(ft, torch.float64, offset=1.0), case, ft, ft) > 1e-2
    case = CASES[IDS.index("SO3")]
    ft = case.field_type()
    plain = torch.nn.BatchNorm3d(ft.size).double()
    assert equivariance_gap(plain, case.input(ft, torch.float64), case, ft, ft) > 1e-2


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_train_output_is_centred_in_invariant_directions_with_unit_variance(case):
    torch.manual_seed(2)
    ft = case.field_type()
    norm = SteerableBatchNorm(ft).double()
    x = 3 * case.input(ft, torch.float64, batch=4, offset=2.0)
    y = norm(x)
    for rep, where in zip(ft.representations, ft.slices):
        field = y[:, where].transpose(0, 1).flatten(1)  # (d, samples)
        invariant = invariant_vectors(rep)
        assert bool(((invariant.T @ field.mean(1)).abs() < 1e-12).all())
        assert abs(field.pow(2).sum(0).mean() / rep.dim - 1) < 1e-4  # var / (var + eps)


def test_non_invariant_means_are_kept():
    """A constant vector field is not centred: its mean is not invariant, removing it would not be equivariant."""
    torch.manual_seed(3)
    so2 = SO2()
    norm = SteerableBatchNorm(FieldType(so2, [so2.irrep(1), so2.irrep(0)])).double()
    offset = torch.tensor([4.0, 0.0, 4.0], dtype=torch.float64).view(1, 3, 1, 1)
    x = torch.randn(8, 3, 6, 6, dtype=torch.float64) + offset
    y = norm(x)
    vector_mean = y[:, :2].mean((0, 2, 3))
    assert vector_mean[0] > 0.9 and abs(vector_mean[1]) < 0.1  # 4 / sqrt(17 / 2) ~ 0.97 along x
    assert abs(y[:, 2].mean()) < 1e-12
    assert norm.num_invariant == 1 and norm.running_mean.shape == (1,) and norm.bias.shape == (1,)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_scalar_fields_match_torch_batch_norm(momentum):
    torch.manual_seed(4)
    so3 = SO3()
    ours = SteerableBatchNorm(FieldType(so3, [so3.irrep(0)] * 3), momentum=momentum).double()
    ref = torch.nn.BatchNorm3d(3, momentum=momentum).double()
    with torch.no_grad():
        for p, q in zip(ours.parameters(), ref.parameters()):
            p.uniform_(0.5, 1.5)
            q.copy_(p)
    for _ in range(3):
        x = 2 * torch.randn(3, 3, 3, 4, 5, dtype=torch.float64) + 1
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-12, atol=1e-12)


def _reference(norm: SteerableBatchNorm, x: torch.Tensor, training: bool) -> torch.Tensor:
    """The batch norm written one field at a time, in full channel coordinates."""
    out, offset = [], 0
    for i, (rep, where) in enumerate(zip(norm.field_type.representations, norm.field_type.slices)):
        v = invariant_vectors(rep)
        v = v * (v[(v.abs() > 1e-6).to(torch.int8).argmax(0), range(v.shape[1])]).sign()  # the layer's signs
        r = v.shape[1]
        field = x[:, where]
        if training:
            mean = v @ (v.T @ field.transpose(0, 1).flatten(1).mean(1))
            var = (field - mean.view(1, -1, 1, 1)).pow(2).mean() * field.shape[1] / rep.dim
        else:
            mean = v @ norm.running_mean[offset:offset + r]
            var = norm.running_var[i]
        shift = v @ norm.bias[offset:offset + r]
        scaled = (field - mean.view(1, -1, 1, 1)) * norm.weight[i] / torch.sqrt(var + norm.eps)
        out.append(scaled + shift.view(1, -1, 1, 1))
        offset += r
    return torch.cat(out, 1)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_matches_a_per_field_reference(training):
    torch.manual_seed(5)
    case = CASES[IDS.index("D4")]
    ft = case.field_type()
    norm = _trained(ft, case, torch.float64)
    assert norm._permutation is not None and len(norm._layout.groups) == 4  # vectors, sign, regular, trivial
    norm.train(training)
    x = 2 * case.input(ft, torch.float64, batch=3, offset=1.0)
    with torch.no_grad():
        torch.testing.assert_close(norm(x), _reference(norm, x, training), rtol=1e-12, atol=1e-12)


def test_running_variance_is_unbiased_only_where_a_mean_was_estimated():
    torch.manual_seed(6)
    c4 = C(4)
    ft = FieldType(c4, [c4.regular_representation(), c4.irrep(1)])
    norm = SteerableBatchNorm(ft, momentum=1.0).double()
    x = torch.randn(2, 6, 2, 2, dtype=torch.float64) + 1
    norm(x)
    n = 8
    regular = x[:, :4].transpose(0, 1).flatten(1)  # (4, n)
    constant = regular.mean(0)  # the invariant coordinate / 2 of each sample
    rest = regular - constant
    expected_regular = (4 * constant.var(unbiased=True) + rest.pow(2).sum() / n) / 4
    vector = x[:, 4:].transpose(0, 1).flatten(1)
    torch.testing.assert_close(norm.running_var, torch.stack([expected_regular, vector.pow(2).sum() / n / 2]),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(norm.running_mean, 2 * constant.mean().view(1), rtol=1e-12, atol=1e-12)


def test_groups_fields_by_invariant_subspace_and_state_dict_is_layout_free():
    so2 = SO2()
    ft = FieldType(so2, [so2.irrep(1), so2.irrep(2), so2.irrep(0)] * 4)
    norm = SteerableBatchNorm(ft)
    assert [len(g) for g in norm._layout.groups] == [8, 4]  # irrep(1) and irrep(2) share "no invariant"
    assert set(norm.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert norm.weight.shape == (12,) and norm.bias.shape == (4,)


def test_without_running_stats_or_affine():
    torch.manual_seed(7)
    c4 = C(4)
    ft = FieldType(c4, [c4.regular_representation()] * 2)
    norm = SteerableBatchNorm(ft, affine=False, track_running_stats=False).eval()
    assert norm.weight is None and norm.running_mean is None
    y = norm(torch.randn(4, 8, 5, 5) + 3)
    assert abs(float(y.mean())) < 1e-5 and abs(float(y.pow(2).mean()) - 1) < 1e-3
    assert "track_running_stats=False" in repr(norm) and "C(4)" in repr(norm)


def test_errors():
    so2 = SO2()
    norm = SteerableBatchNorm(FieldType(so2, [so2.irrep(1), so2.irrep(0)]))
    with pytest.raises(ValueError, match="input has 4 channels.*has 3"):
        norm(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="batch, 3 channels"):
        norm(torch.randn(3))
    with pytest.raises(ValueError, match="more than one value"):
        norm(torch.randn(1, 3))
    assert norm.eval()(torch.randn(1, 3)).shape == (1, 3)  # running statistics need no batch
    with pytest.raises(ValueError, match="momentum"):
        SteerableBatchNorm(norm.field_type, momentum=2.0)
    with pytest.raises(ValueError, match="eps"):
        SteerableBatchNorm(norm.field_type, eps=-1.0)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_index_buffers_follow_the_module_to_another_device(training):
    """On the meta device a buffer left on the CPU would fail the forward (as one left off the GPU would)."""
    case = CASES[IDS.index("D4")]
    ft = case.field_type()
    gated_type = FieldType(case.group, case.fields[:2] + [case.trivial] * 2)
    for layer, in_type in [(SteerableBatchNorm(ft), ft), (NormNonlinearity(ft), ft),
                           (GatedNonlinearity(gated_type, 2), gated_type)]:
        layer = layer.train(training).to("meta")
        assert layer(torch.empty(2, in_type.size, 5, 5, device="meta")).device.type == "meta"
