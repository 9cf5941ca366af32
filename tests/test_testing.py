"""The equivariance tester must pass equivariant functions and catch non-equivariant ones."""
import math

import pytest
import torch

from equiscale import groups
from equiscale.testing import GridField, Positions, assert_equivariant, equivariance_error


def _gradient(field: torch.Tensor) -> torch.Tensor:
    """Periodic central differences of [..., H, W]: (d/dx, d/dy) stacked on axis -3 (x = columns, y = rows)."""
    d_dx = (field.roll(-1, -1) - field.roll(1, -1)) / 2
    d_dy = (field.roll(-1, -2) - field.roll(1, -2)) / 2
    return torch.stack([d_dx, d_dy], dim=-3)


def _directional_derivatives(field: torch.Tensor, n: int) -> torch.Tensor:
    """Derivative along each direction 2 pi k / n: a regular field of C(n), shape [..., n, H, W]."""
    grad = _gradient(field)
    angles = [2 * math.pi * k / n for k in range(n)]
    return torch.stack([math.cos(a) * grad[..., 0, :, :] + math.sin(a) * grad[..., 1, :, :] for a in angles], dim=-3)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_vector_function_is_o3_equivariant(dtype, tolerance):
    x = torch.randn(20, 3, dtype=dtype)
    error = equivariance_error(lambda v: v * v.norm(dim=-1, keepdim=True), x, groups.O3(), "1o", "1o", n_samples=6)
    assert error < tolerance


def test_tester_catches_a_non_equivariant_function():
    x = torch.randn(20, 3, dtype=torch.float64)
    shifted = lambda v: v + torch.tensor([1.0, 0.0, 0.0], dtype=v.dtype)  # noqa: E731
    assert equivariance_error(shifted, x, groups.SO3(), "1o", "1o") > 1e-2
    with pytest.raises(AssertionError, match="equivariance error"):
        assert_equivariant(shifted, x, groups.SO3(), "1o", "1o")


def test_parity_is_applied():
    # The cross product of two vectors is a pseudo-vector (1e), not a vector (1o).
    a, b = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    assert equivariance_error(torch.linalg.cross, (a, b), groups.O3(), ["1o", "1o"], "1e") < 1e-12
    assert equivariance_error(torch.linalg.cross, (a, b), groups.O3(), ["1o", "1o"], "1o", n_samples=16) > 1e-2


def test_positions_with_translations():
    pos = torch.randn(15, 3, dtype=torch.float64)
    centroid = lambda p: p.mean(dim=0)  # noqa: E731
    assert equivariance_error(centroid, pos, groups.O3(), Positions(), Positions(), translations=True) < 1e-12
    relative = lambda p: p - p.mean(dim=0)  # noqa: E731
    assert equivariance_error(relative, pos, groups.O3(), Positions(), "1o", translations=True) < 1e-12
    doubled = lambda p: 2 * p  # noqa: E731
    assert equivariance_error(doubled, pos, groups.O3(), Positions(), Positions(), translations=True) > 1e-2


@pytest.mark.parametrize("group", [groups.C(4), groups.D(4)])
def test_grid_vector_field(group):
    field = torch.randn(2, 9, 9, dtype=torch.float64)
    vector = GridField(group.standard_representation(), axis=-3)
    assert equivariance_error(_gradient, field, group, GridField(), vector, n_samples=8) < 1e-12
    # The same gradient treated as two scalar channels is not equivariant.
    assert equivariance_error(_gradient, field, group, GridField(), GridField(), n_samples=8) > 1e-2


def test_grid_regular_field_on_the_group_axis():
    group = groups.C(4)
    field = torch.randn(3, 8, 8, dtype=torch.float64)
    fn = lambda f: _directional_derivatives(f, 4)  # noqa: E731
    regular = GridField(group.regular_representation(), axis=-3)
    assert equivariance_error(fn, field, group, GridField(), regular, n_samples=8) < 1e-12
    assert equivariance_error(fn, field, group, GridField(), GridField(), n_samples=8) > 1e-2


def test_grid_rejects_elements_that_do_not_map_the_grid():
    field = torch.randn(8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="does not map the grid"):
        equivariance_error(lambda f: f, field, groups.C(8), GridField(), GridField(), n_samples=32)


def test_action_count_mismatch_is_an_error():
    x = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="in_reps"):
        equivariance_error(lambda v: v, x, groups.SO3(), ["1o", "1o"], "1o")
