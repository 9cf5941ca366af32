import pytest
import torch
import torch.nn.functional as F

from equiscale.nn.points import Gate
from equiscale.testing import assert_equivariant

e3nn = pytest.importorskip("e3nn")
from e3nn import nn as e3nn_nn  # noqa: E402

CASES = [
    ("16x0e", [torch.relu], "8x0e+8x0o", [torch.sigmoid, torch.tanh], "16x1o"),
    ("4x0e+3x0o", [F.silu, torch.tanh], "2x0o+2x0e+1x0e", [torch.abs, torch.sigmoid, torch.tanh], "2x1e+2x2o+1x1o"),
    ("8x0e", [F.silu], "", [], ""),
    ("", [], "3x0e", [torch.sigmoid], "1x2e+2x1o"),
    ("2x0e", [torch.tanh], "4x0e", [torch.sigmoid], "1x1o+1x2e+1x1o+1x0e"),  # unsorted gated irreps
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}|{c[2]}|{c[4]}")
def test_gate_matches_e3nn(case, generator):
    ours, theirs = Gate(*case), e3nn_nn.Gate(*case)
    assert str(ours.irreps_in) == str(theirs.irreps_in)
    assert str(ours.irreps_out) == str(theirs.irreps_out)
    x = torch.randn(11, ours.irreps_in.dim, generator=generator)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-6)
    x64 = x.double()
    torch.testing.assert_close(ours(x64), theirs(x64), rtol=1e-6, atol=1e-6)  # e3nn: float32 constants
    assert ours(x64).dtype == torch.float64


@pytest.mark.parametrize("case", CASES[:2] + CASES[4:], ids=lambda c: f"{c[0]}|{c[2]}|{c[4]}")
def test_gate_is_equivariant_in_float64(case, o3_group, generator):
    gate = Gate(*case)
    x = torch.randn(5, gate.irreps_in.dim, generator=generator, dtype=torch.float64)
    assert_equivariant(gate, x, o3_group, str(gate.irreps_in), str(gate.irreps_out), generator=generator, tolerance=1e-10)


def test_gate_derivatives(generator):
    gate = Gate(*CASES[1])
    x = torch.randn(3, gate.irreps_in.dim, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gate, (x,))
    assert torch.autograd.gradgradcheck(gate, (x,))


def test_gate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="irreps_gates must be scalars"):
        Gate("2x0e", [torch.tanh], "1x1o", [torch.tanh], "1x1o")
    with pytest.raises(ValueError, match="irreps_scalars must be scalars"):
        Gate("2x1e", [None], "1x0e", [torch.tanh], "1x1o")
    with pytest.raises(ValueError, match="must match"):
        Gate("2x0e", [torch.tanh], "2x0e", [torch.tanh], "1x1o")
    with pytest.raises(ValueError, match=r"features must have shape \(\.\.\., 6\)"):
        Gate("2x0e", [torch.tanh], "2x0e", [torch.tanh], "1x0e+0e")(torch.randn(3, 4))
