import pytest
import torch

from equiscale.nn.points import scatter_mean, scatter_sum


def _reference_sum(src, index, dim_size):
    out = torch.zeros(dim_size, *src.shape[1:], dtype=src.dtype)
    for e, i in enumerate(index.tolist()):
        out[i] += src[e]
    return out


def test_scatter_sum_matches_a_python_loop(generator):
    src = torch.randn(50, 3, 4, generator=generator, dtype=torch.float64)
    index = torch.randint(0, 7, (50,), generator=generator)
    torch.testing.assert_close(scatter_sum(src, index, 9), _reference_sum(src, index, 9), rtol=0, atol=1e-12)


def test_scatter_mean_averages_and_leaves_empty_buckets_zero(generator):
    src = torch.randn(30, 5, generator=generator, dtype=torch.float64)
    index = torch.randint(0, 4, (30,), generator=generator) * 2  # odd buckets stay empty
    out = scatter_mean(src, index, 8)
    for i in range(8):
        rows = src[index == i]
        expected = rows.mean(0) if len(rows) else torch.zeros(5, dtype=torch.float64)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-12)


def test_scatter_along_another_axis(generator):
    src = torch.randn(3, 20, generator=generator, dtype=torch.float64)
    index = torch.randint(0, 5, (20,), generator=generator)
    torch.testing.assert_close(scatter_sum(src, index, 5, dim=1), _reference_sum(src.T, index, 5).T, rtol=0, atol=1e-12)
    torch.testing.assert_close(scatter_mean(src, index, 5, dim=-1), scatter_mean(src.T, index, 5).T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn", [scatter_sum, scatter_mean])
def test_scatter_first_and_second_derivatives(fn, generator):
    src = torch.randn(12, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 4, (12,), generator=generator)
    # squared so that the second derivative is not identically zero
    assert torch.autograd.gradcheck(lambda s: fn(s, index, 5).pow(2), (src,))
    assert torch.autograd.gradgradcheck(lambda s: fn(s, index, 5).pow(2), (src,))


def test_scatter_rejects_bad_input():
    src = torch.randn(4, 2)
    with pytest.raises(ValueError, match="index"):
        scatter_sum(src, torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="index"):
        scatter_sum(src, torch.zeros(4), 2)
    with pytest.raises(ValueError, match="dim_size"):
        scatter_mean(src, torch.zeros(4, dtype=torch.long), -1)


def test_export_with_a_traced_node_count():
    """``dim_size`` from a dynamic shape is a SymInt under torch.export: accepted, sizes stay dynamic."""
    class Pool(torch.nn.Module):
        def forward(self, src, index, nodes):
            return scatter_sum(src, index, nodes.shape[0])

    edges, count = torch.export.Dim("edges", min=2), torch.export.Dim("nodes", min=2)
    src, index = torch.randn(10, 3), torch.randint(0, 4, (10,))
    program = torch.export.export(Pool(), (src, index, torch.zeros(4)),
                                  dynamic_shapes={"src": {0: edges}, "index": {0: edges}, "nodes": {0: count}})
    src, index = torch.randn(17, 3), torch.randint(0, 7, (17,))
    torch.testing.assert_close(program.module()(src, index, torch.zeros(7)), scatter_sum(src, index, 7))
