import pytest
import torch

from equiscale import o3
from equiscale.nn.points import GatherTensorProductScatter, radius_graph, scatter_sum, uvu_instructions

CASES = [
    ("8x0e+8x1o+8x2e", "0e+1o+2e", "8x0e+8x1o+8x2e"),
    ("3x0e+2x1e+2x0o+1x3o", "0e+1o+2e+3o", "4x0e+1x1o+2x2e+1x0o+3x1e"),
    ("5x1o+2x0e", "1o+0e", "1x1e"),
]


def _inputs(irreps_in, irreps_edge, generator, dtype):
    pos = torch.randn(25, 3, generator=generator, dtype=dtype)
    edges = radius_graph(pos, 1.6)
    x = torch.randn(25, o3.Irreps(irreps_in).dim, generator=generator, dtype=dtype)
    sh = o3.spherical_harmonics(irreps_edge, pos[edges[0]] - pos[edges[1]], True, normalization="component")
    return x, sh, edges


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[1])
@pytest.mark.parametrize("shuffle", [False, True])
def test_matches_e3nn_tensor_product_then_scatter(case, shuffle, generator):
    e3nn_o3 = pytest.importorskip("e3nn.o3")
    irreps_in, irreps_edge, irreps_out = (o3.Irreps(i) for i in case)
    irreps_mid, instructions = uvu_instructions(irreps_in, irreps_edge, irreps_out)
    if shuffle:  # any instruction order: the weight layout follows it
        instructions = [instructions[i] for i in torch.randperm(len(instructions), generator=generator).tolist()]
    x, sh, edges = _inputs(irreps_in, irreps_edge, generator, torch.float32)
    reference = e3nn_o3.TensorProduct(str(irreps_in), str(irreps_edge), str(irreps_mid), instructions, shared_weights=False, internal_weights=False)
    weights = torch.randn(edges.shape[1], reference.weight_numel, generator=generator)
    kernel = GatherTensorProductScatter(irreps_in, irreps_edge, irreps_mid, instructions)
    assert kernel.weight_numel == reference.weight_numel
    expected = scatter_sum(reference(x[edges[0]], sh, weights), edges[1], 25)
    out = kernel(x, sh, weights, edges, 25)
    assert edges.shape[1] > 50 and out.shape == expected.shape
    torch.testing.assert_close(out / expected.abs().max(), expected / expected.abs().max(), rtol=0, atol=2e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[1])
def test_matches_our_tensor_product_in_float64(case, generator):
    from equiscale.o3._tensor_product import TensorProduct

    irreps_in, irreps_edge, irreps_out = (o3.Irreps(i) for i in case)
    irreps_mid, instructions = uvu_instructions(irreps_in, irreps_edge, irreps_out)
    x, sh, edges = _inputs(irreps_in, irreps_edge, generator, torch.float64)
    tp = TensorProduct(irreps_in, irreps_edge, irreps_mid, instructions, shared_weights=False, internal_weights=False)
    weights = torch.randn(edges.shape[1], tp.weight_numel, generator=generator, dtype=torch.float64)
    expected = scatter_sum(tp(x[edges[0]], sh, weights), edges[1], 25)
    out = GatherTensorProductScatter(irreps_in, irreps_edge, irreps_mid, instructions)(x, sh, weights, edges, 25)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12 * float(expected.abs().max()))


def test_derivatives_to_second_order(generator):
    irreps_in, irreps_edge, irreps_out = (o3.Irreps(i) for i in ("2x0e+1x1o+1x2e", "0e+1o+2e", "1x0e+1x1o+1x2e"))
    irreps_mid, instructions = uvu_instructions(irreps_in, irreps_edge, irreps_out)
    kernel = GatherTensorProductScatter(irreps_in, irreps_edge, irreps_mid, instructions)
    pos = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    edges = torch.tensor([[0, 1, 2, 3, 4, 0, 2], [1, 2, 3, 4, 0, 3, 0]])
    sh = o3.spherical_harmonics(irreps_edge, pos[edges[0]] - pos[edges[1]], True, normalization="component")
    x = torch.randn(5, irreps_in.dim, generator=generator, dtype=torch.float64)
    weights = torch.randn(7, kernel.weight_numel, generator=generator, dtype=torch.float64)
    inputs = tuple(t.requires_grad_(True) for t in (x, sh, weights))
    assert torch.autograd.gradcheck(lambda a, b, c: kernel(a, b, c, edges, 5), inputs, fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda a, b, c: kernel(a, b, c, edges, 5), inputs, fast_mode=True)


def test_rejects_what_it_cannot_run():
    with pytest.raises(ValueError, match="each irrep once"):
        GatherTensorProductScatter("2x0e", "2x0e", "2x0e", [(0, 0, 0, "uvu", True)])
    with pytest.raises(ValueError, match="uvu"):
        GatherTensorProductScatter("2x0e", "0e", "2x0e", [(0, 0, 0, "uvw", True)])
    with pytest.raises(ValueError, match="exactly one instruction"):
        GatherTensorProductScatter("2x0e", "0e", "2x0e+2x0e", [(0, 0, 0, "uvu", True)])
