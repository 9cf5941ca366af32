"""The compiled message-passing kernel (uvu_scatter) against the torch path it replaces."""
import pytest
import torch

from equiscale import _kernels, groups, o3
from equiscale.nn.points import GatherTensorProductScatter, MessagePassing, radius_graph, uvu_instructions
from equiscale.testing import Positions, assert_equivariant

pytestmark = pytest.mark.skipif(not _kernels.load(), reason="compiled kernels unavailable")


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def o3_group():
    return groups.O3()

CASES = {  # in, edge, out: l <= 2 (unrolled sizes), l = 3 (generic sizes), channel counts off the vector width
    "lmax2": ("8x0e+8x1o+8x2e", "0e+1o+2e", "8x0e+8x1o+8x2e"),
    "lmax3-odd-muls": ("3x0e+2x1e+2x0o+1x3o", "0e+1o+2e+3o", "4x0e+1x1o+2x2e+1x0o+3x1e"),
    "wide": ("19x0e+11x1o+9x2e", "0e+1o+2e", "19x0e+11x1o+9x2e"),
}


def _kernel(case: str) -> GatherTensorProductScatter:
    irreps_in, irreps_edge, irreps_out = (o3.Irreps(i) for i in CASES[case])
    irreps_mid, instructions = uvu_instructions(irreps_in, irreps_edge, irreps_out)
    return GatherTensorProductScatter(irreps_in, irreps_edge, irreps_mid, instructions)


def _inputs(kernel, num_nodes, generator, dtype, radius=1.6):
    pos = torch.randn(num_nodes, 3, generator=generator, dtype=dtype)
    edges = radius_graph(pos, radius)
    x = torch.randn(num_nodes, kernel.irreps_in.dim, generator=generator, dtype=dtype)
    sh = o3.spherical_harmonics(kernel.irreps_edge, pos[edges[0]] - pos[edges[1]], True, normalization="component")
    weights = torch.randn(edges.shape[1], kernel.weight_numel, generator=generator, dtype=dtype)
    return x, sh, weights, edges


def _close(actual, expected, tolerance):
    scale = float(expected.detach().abs().max().clamp_min(1e-30))
    torch.testing.assert_close(actual / scale, expected / scale, rtol=0, atol=tolerance)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_forward_and_gradients_equal_the_torch_path(case, dtype, tolerance, generator):
    kernel = _kernel(case)
    x, sh, weights, edges = _inputs(kernel, 30, generator, dtype)
    inputs = [t.clone().requires_grad_(True) for t in (x, sh, weights)]
    out = kernel(*inputs, edges, 30)
    reference_inputs = [t.clone().requires_grad_(True) for t in (x, sh, weights)]
    expected = kernel.reference(*reference_inputs, edges, 30)
    assert edges.shape[1] > 50 and out.dtype == dtype and out.shape == expected.shape
    _close(out, expected, tolerance)
    cotangent = torch.randn(out.shape, generator=generator, dtype=dtype)
    grads = torch.autograd.grad(out, inputs, cotangent, create_graph=True)
    expected_grads = torch.autograd.grad(expected, reference_inputs, cotangent, create_graph=True)
    for actual, reference in zip(grads, expected_grads):
        _close(actual, reference, tolerance)
    # second order: a scalar of the gradients, differentiated again (training on forces)
    probe = [torch.randn(g.shape, generator=generator, dtype=dtype) for g in grads]
    second = torch.autograd.grad(sum((g * p).sum() for g, p in zip(grads, probe)), inputs)
    expected_second = torch.autograd.grad(sum((g * p).sum() for g, p in zip(expected_grads, probe)), reference_inputs)
    for actual, reference in zip(second, expected_second):
        _close(actual, reference, 10 * tolerance)


def test_the_compiled_kernel_is_what_runs(monkeypatch, generator):
    kernel = _kernel("lmax2")
    x, sh, weights, edges = _inputs(kernel, 10, generator, torch.float64)

    def refuse(*args):
        raise AssertionError("the torch path ran although the kernels are available")

    monkeypatch.setattr(kernel, "reference", refuse)
    kernel(x, sh, weights, edges, 10)


@pytest.mark.parametrize("case", ["lmax2", "lmax3-odd-muls"])
def test_gradcheck_and_gradgradcheck(case, generator):
    kernel = _kernel(case)
    x, sh, weights, edges = _inputs(kernel, 6, generator, torch.float64, radius=1.8)
    assert edges.shape[1] >= 6
    inputs = tuple(t.requires_grad_(True) for t in (x, sh, weights))

    def fn(a, b, c):
        return kernel(a, b, c, edges, 6)

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_block_through_the_kernel_is_equivariant(o3_group, generator):
    torch.manual_seed(0)
    irreps_in, irreps_sh, irreps_out = CASES["lmax3-odd-muls"]
    block = MessagePassing(irreps_in, irreps_out, irreps_sh, num_radial_basis=6, radial_hidden=(16,), avg_num_neighbors=5.0,
                           cutoff=2.0).double()
    assert block.fused and block.kernel.compiled
    pos = torch.rand(12, 3, generator=generator, dtype=torch.float64) * 2.5
    edges = radius_graph(pos, 2.0)
    x = torch.randn(12, block.irreps_node_in.dim, generator=generator, dtype=torch.float64)
    actions = (irreps_in, Positions(), None)
    assert_equivariant(block, (x, pos, edges), o3_group, actions, irreps_out, translations=True, generator=generator, tolerance=1e-10)


def test_zero_edges_and_zero_atoms(generator):
    kernel = _kernel("lmax2")
    for nodes in (0, 4):
        x = torch.randn(nodes, kernel.irreps_in.dim, generator=generator, dtype=torch.float64, requires_grad=True)
        sh = torch.zeros(0, kernel.irreps_edge.dim, dtype=torch.float64, requires_grad=True)
        weights = torch.zeros(0, kernel.weight_numel, dtype=torch.float64, requires_grad=True)
        out = kernel(x, sh, weights, torch.zeros(2, 0, dtype=torch.long), nodes)
        assert out.shape == (nodes, kernel.irreps_mid.dim) and not out.any()
        grads = torch.autograd.grad(out.sum(), (x, sh, weights))
        assert [g.shape for g in grads] == [x.shape, sh.shape, weights.shape] and not grads[0].any()


def test_non_contiguous_broadcast_and_int32_inputs(generator):
    kernel = _kernel("wide")
    x, sh, weights, edges = _inputs(kernel, 20, generator, torch.float64)
    expected = kernel.reference(x, sh, weights, edges, 20)
    x_strided = x.t().contiguous().t()  # same values, column-major
    sh_strided = torch.cat([sh, sh], dim=1)[:, : sh.shape[1]]
    assert not x_strided.is_contiguous() and not sh_strided.is_contiguous()
    _close(kernel(x_strided, sh_strided, weights, edges.int(), 20), expected, 1e-12)
    shared = weights[:1].expand_as(weights)  # one set of weights broadcast to every edge
    _close(kernel(x, sh, shared, edges, 20), kernel.reference(x, sh, shared.contiguous(), edges, 20), 1e-12)


def test_bad_edge_index_is_refused(generator):
    kernel = _kernel("lmax2")
    x, sh, weights, edges = _inputs(kernel, 10, generator, torch.float64)
    with pytest.raises(RuntimeError, match="outside"):  # nodes 5..9 do not exist
        kernel(x[:5], sh, weights, edges, 5)


def test_opcheck_fake_and_autograd_registration(generator):
    kernel = _kernel("lmax3-odd-muls")
    x, sh, weights, edges = _inputs(kernel, 8, generator, torch.float64, radius=1.8)
    args = (x.requires_grad_(True), sh.requires_grad_(True), weights.requires_grad_(True), edges, 8, kernel.irreps_mid.dim, *kernel._metadata)
    torch.library.opcheck(torch.ops.equiscale.uvu_scatter.default, args)
    grad = torch.randn(8, kernel.irreps_mid.dim, dtype=torch.float64, requires_grad=True)
    backward_args = (grad, x, sh, weights, edges, 8, *kernel._metadata, True, True, True)
    torch.library.opcheck(torch.ops.equiscale.uvu_scatter_backward.default, backward_args)
    cotangents = [torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in (x, sh, weights)]
    double_args = (grad.detach(), x.detach(), sh.detach(), weights.detach(), *cotangents, edges, 8, *kernel._metadata, True, True, True, True)
    # no autograd of its own: it runs inside a backward pass without a graph (see _backward_backward)
    torch.library.opcheck(torch.ops.equiscale.uvu_scatter_double_backward.default, double_args,
                          test_utils=("test_schema", "test_faketensor"))


def test_torch_compile_over_the_op(generator):
    kernel = _kernel("lmax2")
    x, sh, weights, edges = _inputs(kernel, 12, generator, torch.float32)
    inputs = [t.clone().requires_grad_(True) for t in (x, sh, weights)]

    def loss(a, b, c):
        return kernel(a, b, c, edges, 12).pow(2).sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    value = compiled(*inputs)
    grads = torch.autograd.grad(value, inputs)
    eager_inputs = [t.clone().requires_grad_(True) for t in (x, sh, weights)]
    eager = loss(*eager_inputs)
    torch.testing.assert_close(value, eager)
    for actual, expected in zip(grads, torch.autograd.grad(eager, eager_inputs)):
        torch.testing.assert_close(actual, expected)


def test_kernels_off_runs_the_torch_path(monkeypatch, generator):
    kernel = _kernel("lmax2")
    x, sh, weights, edges = _inputs(kernel, 10, generator, torch.float64)
    compiled = kernel(x, sh, weights, edges, 10)
    monkeypatch.setenv("EQUISCALE_KERNELS", "off")
    assert not _kernels.use_kernels(x)
    calls = []
    reference = kernel.reference
    monkeypatch.setattr(kernel, "reference", lambda *args: calls.append(1) or reference(*args))
    fallback = kernel(x, sh, weights, edges, 10)
    assert calls == [1]
    _close(compiled, fallback, 1e-12)


def test_third_derivatives_through_the_composed_double_backward(generator):
    """Double backward with a graph kept (a third derivative) takes the composed, differentiable path."""
    kernel = _kernel("lmax3-odd-muls")
    x, sh, weights, edges = _inputs(kernel, 8, generator, torch.float64, radius=1.8)
    results = []
    for run in (kernel, kernel.reference):
        inputs = [t.clone().requires_grad_(True) for t in (x, sh, weights)]
        out = run(*inputs, edges, 8)
        first = torch.autograd.grad(out.pow(2).sum(), inputs, create_graph=True)
        second = torch.autograd.grad(sum(g.pow(2).sum() for g in first), inputs, create_graph=True)
        third = torch.autograd.grad(sum(g.sin().sum() for g in second), inputs)
        results.append(third)
    for actual, expected in zip(*results):
        _close(actual, expected, 1e-10)


def test_fused_double_backward_equals_the_composed_one(generator):
    kernel = _kernel("wide")
    x, sh, weights, edges = _inputs(kernel, 20, generator, torch.float64)
    grad = torch.randn(20, kernel.irreps_mid.dim, generator=generator, dtype=torch.float64)
    cotangents = [torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in (x, sh, weights)]
    fused = torch.ops.equiscale.uvu_scatter_double_backward(grad, x, sh, weights, *cotangents, edges, 20, *kernel._metadata,
                                                            True, True, True, True)
    inputs = [t.clone().requires_grad_(True) for t in (grad, x, sh, weights)]
    with torch.enable_grad():
        first = torch.ops.equiscale.uvu_scatter_backward(*inputs, edges, 20, *kernel._metadata, True, True, True)
        expected = torch.autograd.grad(first, inputs, cotangents, create_graph=True)  # graph kept: the composed path
    for actual, reference in zip(fused, expected):
        _close(actual, reference, 1e-12)
    partial = torch.ops.equiscale.uvu_scatter_double_backward(grad, x, sh, weights, None, cotangents[1], None, edges, 20,
                                                              *kernel._metadata, True, False, False, True)
    assert partial[1].numel() == 0 and partial[2].numel() == 0 and partial[0].shape == grad.shape


def test_irreps_beyond_the_kernel_take_the_torch_path(generator):
    irreps_in, irreps_edge = o3.Irreps("2x0e+1x8e"), o3.Irreps("0e+8e")
    irreps_mid, instructions = uvu_instructions(irreps_in, irreps_edge, o3.Irreps("2x0e+1x8e"))
    kernel = GatherTensorProductScatter(irreps_in, irreps_edge, irreps_mid, instructions)
    assert not kernel.compiled
    x, sh, weights, edges = _inputs(kernel, 6, generator, torch.float64, radius=1.8)
    _close(kernel(x, sh, weights, edges, 6), kernel.reference(x, sh, weights, edges, 6), 1e-12)
