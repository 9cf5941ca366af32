"""The steerable kernel bases: the constraint at random points, analytic = numerical, completeness, errors."""
from __future__ import annotations

import math

import pytest
import torch

from equiscale.groups import C, D, O2, O3, SO2, SO3, Representation
from equiscale.kernels import analytic_intertwiners, kernel_basis, numerical_intertwiners, space_dimension

PLANAR = [C(1), C(3), C(4), C(8), D(1), D(4), D(6), SO2(), O2()]
SPATIAL = [SO3(), O3()]


def _irreps(group):
    if group.is_finite:
        return group.irreps()
    return group.irreps(2 if space_dimension(group) == 3 else 3)


def _elements(group, n=6):
    if group.is_finite:
        return group.elements()
    return group.sample(n, generator=torch.Generator().manual_seed(3))


def constraint_error(basis, group, rho_in, rho_out, scale=2.0) -> float:
    """max |K(g x) - rho_out(g) K(x) rho_in(g)^-1| over random points and group elements."""
    d = space_dimension(group)
    x = torch.randn(30, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * scale
    g = _elements(group)
    matrices = group.standard_representation()(g)
    k = basis(x)
    error = 0.0
    for gi, m in zip(g, matrices):
        moved = basis(x @ m.T)
        expected = rho_out(gi) @ k @ rho_in(gi).T
        error = max(error, float((moved - expected).abs().max()))
    return error


@pytest.mark.parametrize("method", ["analytic", "numerical"])
@pytest.mark.parametrize("group", PLANAR + SPATIAL, ids=lambda g: g.name)
def test_constraint_holds_for_every_pair_of_irreps(group, method):
    irreps = _irreps(group)
    size = 5 if space_dimension(group) == 2 else 3
    for rho_in in irreps:
        for rho_out in irreps:
            basis = kernel_basis(group, rho_in, rho_out, size, frequency_cutoff=3, max_frequency=4, strict=False)
            if len(basis) == 0:
                continue
            assert constraint_error(basis, group, rho_in, rho_out) <= 1e-10, (rho_in.name, rho_out.name)


@pytest.mark.parametrize("group", PLANAR + SPATIAL, ids=lambda g: g.name)
def test_analytic_and_numerical_intertwiners_span_the_same_space(group):
    irreps = _irreps(group)
    top = 4 if space_dimension(group) == 3 else 6
    nonzero = 0
    for rho_in in irreps:
        for rho_out in irreps:
            for J in range(top + 1):
                a = analytic_intertwiners(group, J, rho_in, rho_out)
                n = numerical_intertwiners(group, J, rho_in, rho_out)
                assert a.shape == n.shape, (rho_in.name, rho_out.name, J)
                if a.shape[0]:
                    nonzero += 1
                    pa, pn = a.reshape(a.shape[0], -1), n.reshape(n.shape[0], -1)
                    # equal orthogonal projectors <=> equal spans
                    assert torch.allclose(pa.T @ pa, pn.T @ pn, atol=1e-10)
                    assert torch.allclose(pa @ pa.T, torch.eye(pa.shape[0], dtype=torch.float64), atol=1e-12)
    assert nonzero > 0


def test_reducible_representations_analytic_equals_numerical_basis_span():
    group = C(8)
    reg = group.regular_representation()
    std = group.standard_representation() + group.irrep(0)
    for rho_in, rho_out in ((reg, reg), (std, reg), (reg, std)):
        a = kernel_basis(group, rho_in, rho_out, 5, method="analytic", strict=False)
        n = kernel_basis(group, rho_in, rho_out, 5, method="numerical", strict=False)
        assert len(a) == len(n)
        ka, kn = a.on_grid(5).reshape(len(a), -1), n.on_grid(5).reshape(len(n), -1)
        rank = int(torch.linalg.matrix_rank(ka))
        assert int(torch.linalg.matrix_rank(torch.cat([ka, kn]))) == rank == int(torch.linalg.matrix_rank(kn))


def _so2_expected_count(f_in: int, f_out: int, j_max: int) -> int:
    """Independent count (Weiler and Cesa 2019, SO(2) table): kernels per ring with harmonics J <= j_max."""
    if f_in == 0 and f_out == 0:
        return 1
    if f_in == 0 or f_out == 0:
        return 2 if max(f_in, f_out) <= j_max else 0
    count = 2 if abs(f_out - f_in) <= j_max else 0  # J = |f_out - f_in| (two maps: identity and 90 degrees)
    count += 2 if f_out + f_in <= j_max else 0
    return count


def test_so2_counts_match_the_closed_form():
    group = SO2()
    for f_in in range(4):
        for f_out in range(4):
            basis = kernel_basis(group, group.irrep(f_in), group.irrep(f_out), radii=[2.0], frequency_cutoff=2.5, max_frequency=5,
                                 strict=False)
            assert len(basis) == _so2_expected_count(f_in, f_out, 5), (f_in, f_out)


def test_so3_counts_match_clebsch_gordan_selection_rules():
    group = SO3()
    for l_in in range(3):
        for l_out in range(3):
            basis = kernel_basis(group, group.irrep(l_in), group.irrep(l_out), radii=[3.0], frequency_cutoff=2.0,
                                 max_frequency=4)
            assert len(basis) == 2 * min(l_in, l_out) + 1
    # O(3): parity selects J of one parity, scalar -> pseudo-vector has no kernel at all
    basis = kernel_basis(O3(), O3().irrep(0, 1), O3().irrep(1, -1), radii=[0.0, 1.0], frequency_cutoff=2.0)
    assert len(basis) == 1
    with pytest.raises(ValueError, match="no O\\(3\\)-equivariant kernel"):
        kernel_basis(O3(), O3().irrep(0, 1), O3().irrep(1, 1), radii=[0.0, 1.0, 2.0])


def test_changed_basis_representation_satisfies_the_constraint():
    group = SO3()
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    rho = (group.irrep(0) + group.irrep(1)).change_basis(q)
    basis = kernel_basis(group, rho, group.irrep(1), 5)
    assert constraint_error(basis, group, rho, group.irrep(1)) <= 1e-10


def test_grid_kernels_vanish_outside_the_disc_and_are_smooth_at_the_centre():
    basis = kernel_basis(SO2(), SO2().irrep(1), SO2().irrep(1), 5)
    grid = basis.on_grid(5)
    assert grid.shape == (len(basis), 2, 2, 5, 5)
    corner = grid[..., 0, 0]
    assert corner.abs().max() == 0  # radius 2.83 > 2.5: outside the round support
    assert torch.isfinite(grid).all()


def test_a_huge_direct_sum_asks_for_field_types():
    group = C(8)
    many = group.regular_representation()
    for _ in range(15):
        many = many + group.regular_representation()
    basis = kernel_basis(group, many, many, 5)
    with pytest.raises(ValueError, match="one basis per pair of field representations"):
        basis.on_grid(5)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="no kernel maps .* needs angular frequency 3"):
        kernel_basis(SO2(), SO2().irrep(3), SO2().irrep(0), 3)
    with pytest.raises(ValueError, match="in_rep is a representation of SO\\(2\\).*group is C\\(4\\)"):
        kernel_basis(C(4), SO2().irrep(1), C(4).irrep(1), 3)
    with pytest.raises(ValueError, match="method"):
        kernel_basis(C(4), C(4).irrep(1), C(4).irrep(1), 3, method="magic")
    with pytest.raises(ValueError, match="acting on R\\^2"):
        kernel_basis("SO(5)", C(4).irrep(1), C(4).irrep(1), 3)
    with pytest.raises(ValueError, match="kernel_size or radii"):
        kernel_basis(C(4), C(4).irrep(1), C(4).irrep(1))
    basis = kernel_basis(C(4), C(4).irrep(1), C(4).irrep(1), 3)
    with pytest.raises(ValueError, match="points must be"):
        basis(torch.zeros(4, 3, dtype=torch.float64))


def test_user_representation_from_generators():
    group = D(4)
    # D(4) acting on the 4 corners of a square, given by its generators: r cycles them, s swaps.
    r = torch.tensor([[0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=torch.float64)
    s = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]], dtype=torch.float64)
    corners = Representation.from_generators(group, [r, s])
    basis = kernel_basis(group, corners, group.irrep(1, 1), 5)
    assert len(basis) > 0
    assert constraint_error(basis, group, corners, group.irrep(1, 1)) <= 1e-10
    assert math.isfinite(float(basis(torch.zeros(1, 2, dtype=torch.float64)).sum()))
