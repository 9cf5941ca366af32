import time

import pytest
import torch

from equiscale.nn.points import MessagePassing, radius_graph
from equiscale.testing import Positions, assert_equivariant

IRREPS_IN, IRREPS_OUT, IRREPS_SH = "4x0e+2x1o+2x2e+1x0o+1x1e", "3x0e+2x1o+1x2e+1x1e+1x0o", "0e+1o+2e+3o"


def _graph(n: int, generator: torch.Generator, dtype=torch.float64):
    pos = torch.rand(n, 3, generator=generator, dtype=dtype) * 2.5
    return pos, radius_graph(pos, 2.0)


def _block(fused=None, **kwargs) -> MessagePassing:
    torch.manual_seed(0)
    options = dict(num_radial_basis=6, radial_hidden=(16,), avg_num_neighbors=5.0, cutoff=2.0, fused=fused)
    options.update(kwargs)
    return MessagePassing(IRREPS_IN, IRREPS_OUT, IRREPS_SH, **options)


@pytest.mark.parametrize("fused", [True, False])
def test_equivariant_under_rotations_reflections_and_translations(fused, o3_group, generator):
    block = _block(fused).double()
    pos, edges = _graph(12, generator)
    x = torch.randn(12, block.irreps_node_in.dim, generator=generator, dtype=torch.float64)
    assert edges.shape[1] > 30
    inputs, actions = (x, pos, edges), (IRREPS_IN, Positions(), None)
    assert_equivariant(block, inputs, o3_group, actions, IRREPS_OUT, generator=generator, tolerance=1e-10)
    assert_equivariant(block, inputs, o3_group, actions, IRREPS_OUT, translations=True, generator=generator, tolerance=1e-10)


def test_translation_alone_changes_nothing(generator):
    block = _block().double()
    pos, edges = _graph(10, generator)
    x = torch.randn(10, block.irreps_node_in.dim, generator=generator, dtype=torch.float64)
    shifted = pos + torch.tensor([3.0, -1.0, 7.5], dtype=torch.float64)
    torch.testing.assert_close(block(x, shifted, edges), block(x, pos, edges), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_fused_and_tensor_product_paths_agree(dtype, tolerance, generator):
    block = _block(True).to(dtype)
    pos, edges = _graph(15, generator, dtype)
    x = torch.randn(15, block.irreps_node_in.dim, generator=generator, dtype=dtype, requires_grad=True)
    fused = block(x, pos, edges)
    (fused_grad,) = torch.autograd.grad(fused.pow(2).sum(), x)
    block.fused = False
    plain = block(x, pos, edges)
    (plain_grad,) = torch.autograd.grad(plain.pow(2).sum(), x)
    scale = plain.abs().max()
    assert scale > 0.1 and fused.dtype == dtype
    torch.testing.assert_close(fused / scale, plain / scale, rtol=0, atol=tolerance)
    torch.testing.assert_close(fused_grad / plain_grad.abs().max(), plain_grad / plain_grad.abs().max(), rtol=0, atol=tolerance)


def test_matches_the_block_assembled_from_e3nn(generator):
    pytest.importorskip("e3nn")
    from tests.nn.points._e3nn_block import E3nnMessagePassing

    block = _block()
    with torch.no_grad():
        block.radial_basis.frequencies.mul_(1.1)  # trained-looking frequencies
    reference = E3nnMessagePassing(block)
    pos, edges = _graph(20, generator, torch.float32)
    x = torch.randn(20, block.irreps_node_in.dim, generator=generator)
    expected = reference(x, pos, edges)
    for fused in (True, False):
        block.fused = fused
        out = block(x, pos, edges)
        torch.testing.assert_close(out / expected.abs().max(), expected / expected.abs().max(), rtol=0, atol=1e-5)


def test_messages_are_divided_by_the_root_of_avg_num_neighbors(generator):
    pos, edges = _graph(8, generator)
    x = torch.randn(8, _block().irreps_node_in.dim, generator=generator, dtype=torch.float64)
    one = _block(avg_num_neighbors=1.0).double()(x, pos, edges)
    four = _block(avg_num_neighbors=4.0).double()(x, pos, edges)
    torch.testing.assert_close(four, one / 2, rtol=1e-12, atol=1e-12)


def test_edges_beyond_the_cutoff_contribute_nothing(generator):
    block = _block().double()
    pos, edges = _graph(8, generator)
    x = torch.randn(8, block.irreps_node_in.dim, generator=generator, dtype=torch.float64)
    far = torch.cat([pos, torch.tensor([[50.0, 0.0, 0.0]], dtype=torch.float64)])
    extra = torch.cat([edges, torch.tensor([[8, 0], [0, 8]])], dim=1)
    x_far = torch.cat([x, torch.randn(1, x.shape[1], dtype=torch.float64)])
    torch.testing.assert_close(block(x_far, far, extra)[:8], block(x, pos, edges), rtol=0, atol=1e-14)


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck_and_double_backward(fused, generator):
    torch.manual_seed(0)
    block = MessagePassing("2x0e+1x1o+1x2e", "1x0e+1x1o", "0e+1o+2e", num_radial_basis=3, radial_hidden=4, cutoff=2.0, fused=fused).double()
    pos, edges = _graph(5, generator)
    pos.requires_grad_(True)
    x = torch.randn(5, block.irreps_node_in.dim, generator=generator, dtype=torch.float64, requires_grad=True)
    assert edges.shape[1] >= 6
    assert torch.autograd.gradcheck(lambda x, p: block(x, p, edges), (x, pos), fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda x, p: block(x, p, edges), (x, pos), fast_mode=True)


def test_forces_train_through_double_backward(generator):
    block = _block().double()
    pos, edges = _graph(10, generator)
    pos.requires_grad_(True)
    x = torch.randn(10, block.irreps_node_in.dim, generator=generator, dtype=torch.float64)

    def force_loss() -> torch.Tensor:
        energy = block(x, pos, edges)[:, :3].sum()
        (forces,) = torch.autograd.grad(-energy, pos, create_graph=True)
        return forces.pow(2).sum()

    weight = block.radial_mlp.weights[0]
    (grad,) = torch.autograd.grad(force_loss(), weight)
    direction = torch.randn(weight.shape, generator=generator, dtype=torch.float64)
    eps = 1e-6
    with torch.no_grad():
        weight.add_(eps * direction)
    plus = force_loss().item()
    with torch.no_grad():
        weight.sub_(2 * eps * direction)
    minus = force_loss().item()
    with torch.no_grad():
        weight.add_(eps * direction)
    assert abs((plus - minus) / (2 * eps) - (grad * direction).sum().item()) < 1e-6 * max(1.0, abs(plus))


@pytest.mark.slow
def test_runs_under_torch_compile(generator):
    block = _block()
    pos, edges = _graph(16, generator, torch.float32)
    x = torch.randn(16, block.irreps_node_in.dim, generator=generator)
    expected = block(x, pos, edges)
    compiled = torch.compile(block)
    start = time.perf_counter()
    out = compiled(x, pos, edges)
    print(f"torch.compile: first call {time.perf_counter() - start:.1f} s")
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_traces_with_dynamo(generator):
    block = _block()
    pos, edges = _graph(16, generator, torch.float32)
    x = torch.randn(16, block.irreps_node_in.dim, generator=generator)
    compiled = torch.compile(block, backend="eager")
    torch.testing.assert_close(compiled(x, pos, edges), block(x, pos, edges))


def test_a_graph_without_edges_gives_zero(generator):
    block = _block()
    x = torch.randn(4, block.irreps_node_in.dim, generator=generator)
    for fused in (True, False):
        block.fused = fused
        out = block(x, torch.randn(4, 3, generator=generator), torch.zeros(2, 0, dtype=torch.long))
        assert out.shape == (4, block.irreps_node_out.dim) and not out.any()


def test_rejects_bad_input(generator):
    block = _block()
    pos, edges = _graph(6, generator, torch.float32)
    x = torch.randn(6, block.irreps_node_in.dim)
    with pytest.raises(ValueError, match=r"node_features must have shape \(N, 24\)"):
        block(x[:, :-1], pos, edges)
    with pytest.raises(ValueError, match=r"positions must have shape \(6, 3\)"):
        block(x, pos[:5], edges)
    with pytest.raises(ValueError, match=r"edge_index must be .* \(2, E\)"):
        block(x, pos, edges[0])
    with pytest.raises(ValueError, match="fused=True"):
        MessagePassing("2x0e", "2x0e", "2x0e+1o", fused=True)
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        MessagePassing("2x0e", "2x0e", avg_num_neighbors=0)
    with pytest.raises(ValueError, match="radial_basis"):
        MessagePassing("2x0e", "2x0e", radial_basis="chebyshev")


def test_precomputed_edge_inputs_give_the_same_output(generator):
    from equiscale import o3

    block = _block().double()
    pos, edges = _graph(12, generator)
    x = torch.randn(12, block.irreps_node_in.dim, generator=generator, dtype=torch.float64)
    vectors = pos[edges[0]] - pos[edges[1]]
    sh = o3.spherical_harmonics(block.irreps_edge_attr, vectors, True, normalization="component")
    weights = block.edge_weights(vectors.norm(dim=-1))
    expected = block(x, pos, edges)
    for kwargs in (dict(edge_vectors=vectors), dict(edge_attr=sh, edge_weights=weights),
                   dict(edge_vectors=vectors, edge_attr=sh), dict(edge_vectors=vectors, edge_weights=weights)):
        torch.testing.assert_close(block(x, edge_index=edges, **kwargs), expected, rtol=0, atol=1e-12)
    assert weights.shape == (edges.shape[1], block.weight_numel)
    with pytest.raises(ValueError, match="edge_attr must have shape"):
        block(x, edge_index=edges, edge_attr=sh[:, :-1], edge_weights=weights)
    with pytest.raises(ValueError, match="edge_weights must have shape"):
        block(x, edge_index=edges, edge_attr=sh, edge_weights=weights[:-1])
    with pytest.raises(ValueError, match="or pass edge_vectors"):
        block(x, edge_index=edges, edge_attr=sh)


def test_edge_weights_of_bond_pairs_are_copied_to_both_directions(generator):
    block = _block().double()
    lengths = torch.rand(5, generator=generator, dtype=torch.float64) + 0.5
    pairs = (torch.tensor([0, 2, 4]), torch.tensor([0, 0, 1, 1, 2]))
    both = lengths[[0, 0, 2, 2, 4]]
    torch.testing.assert_close(block.edge_weights(both, pairs), block.edge_weights(both), rtol=0, atol=1e-14)


def test_radial_network_once_per_pair_on_large_graphs_gives_the_same_output(generator, monkeypatch):
    import equiscale.nn.points.message_passing as module

    block = _block().double()
    pos, edges = _graph(30, generator)
    x = torch.randn(30, block.irreps_node_in.dim, generator=generator, dtype=torch.float64, requires_grad=True)
    monkeypatch.setattr(module, "_PAIRS_FROM", 0)
    paired = block(x, pos, edges)
    (paired_grad,) = torch.autograd.grad(paired.pow(2).sum(), x)
    monkeypatch.setattr(module, "_PAIRS_FROM", 10**9)
    plain = block(x, pos, edges)
    (plain_grad,) = torch.autograd.grad(plain.pow(2).sum(), x)
    torch.testing.assert_close(paired, plain, rtol=0, atol=1e-12)
    torch.testing.assert_close(paired_grad, plain_grad, rtol=0, atol=1e-11)
