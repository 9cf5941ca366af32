import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from equiscale.nn.points import radius_graph


def _reference(pos, r, batch=None, loop=False):
    d = cdist(pos.numpy(), pos.numpy())
    connected = d < r
    if batch is not None:
        connected &= batch.numpy()[:, None] == batch.numpy()[None, :]
    if not loop:
        np.fill_diagonal(connected, False)
    target, source = np.nonzero(connected)  # row-major: sorted by target, then source
    return torch.from_numpy(np.stack([source, target])).long()


def test_matches_scipy_distances_and_is_sorted(generator):
    pos = torch.rand(60, 3, generator=generator, dtype=torch.float64) * 3
    edges = radius_graph(pos, 1.2)
    assert edges.dtype == torch.long and edges.shape[0] == 2 and edges.shape[1] > 100
    assert torch.equal(edges, _reference(pos, 1.2))
    key = edges[1] * 60 + edges[0]
    assert torch.all(key[1:] > key[:-1])  # sorted by target, then source; no duplicates
    assert not torch.any(edges[0] == edges[1])
    assert torch.equal(radius_graph(pos.float(), 1.2), edges)


def test_batches_are_never_connected_and_loops_on_request(generator):
    pos = torch.rand(40, 3, generator=generator, dtype=torch.float64)  # all within reach of each other
    batch = torch.randint(0, 3, (40,), generator=generator)  # unsorted batch vector
    edges = radius_graph(pos, 5.0, batch=batch, loop=True)
    assert torch.equal(edges, _reference(pos, 5.0, batch, loop=True))
    assert torch.all(batch[edges[0]] == batch[edges[1]])
    assert int((edges[0] == edges[1]).sum()) == 40


def test_row_blocks_give_the_same_graph(generator, monkeypatch):
    from equiscale.nn.points import graph

    pos = torch.rand(50, 3, generator=generator, dtype=torch.float64) * 2
    full = radius_graph(pos, 0.8)
    monkeypatch.setattr(graph, "_BLOCK_ELEMENTS", 7 * 50)  # 7 rows per block
    assert torch.equal(radius_graph(pos, 0.8), full)


def test_max_num_neighbors_keeps_the_nearest(generator):
    pos = torch.rand(30, 3, generator=generator, dtype=torch.float64)
    edges = radius_graph(pos, 0.7, max_num_neighbors=3)
    full = radius_graph(pos, 0.7)
    distance = (pos[full[0]] - pos[full[1]]).norm(dim=-1)
    for i in range(30):
        kept = edges[0][edges[1] == i]
        assert len(kept) == min(3, int((full[1] == i).sum()))
        candidates = full[0][full[1] == i]
        nearest = candidates[torch.argsort(distance[full[1] == i])[:3]]
        assert set(kept.tolist()) == set(nearest.tolist())


def test_empty_and_tiny_inputs():
    assert radius_graph(torch.zeros(0, 3), 1.0).shape == (2, 0)
    assert radius_graph(torch.zeros(1, 3), 1.0).shape == (2, 0)
    assert radius_graph(torch.tensor([[0.0, 0, 0], [5.0, 0, 0]]), 1.0).shape == (2, 0)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        radius_graph(torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]]), 1.0)
    with pytest.raises(ValueError, match=r"pos must be .*\(N, D\)"):
        radius_graph(torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="pos must be"):
        radius_graph(torch.zeros(3, 3, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="batch"):
        radius_graph(torch.zeros(3, 3), 1.0, batch=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="r must be"):
        radius_graph(torch.zeros(3, 3), -1.0)
    with pytest.raises(ValueError, match="max_num_neighbors"):
        radius_graph(torch.zeros(3, 3), 1.0, max_num_neighbors=0)


def test_edge_pairs_group_each_edge_with_its_reverse():
    from equiscale.nn.points import edge_pairs

    edges = torch.tensor([[0, 1, 2, 1, 3, 0], [1, 0, 1, 2, 0, 2]])  # 3 -> 0 and 0 -> 2 have no reverse
    representative, inverse = edge_pairs(edges, 4)
    assert representative.shape == (4,) and inverse.shape == (6,)
    assert inverse[0] == inverse[1] and inverse[2] == inverse[3] and len(set(inverse.tolist())) == 4
    pair = lambda e: frozenset(edges[:, e].tolist())  # noqa: E731
    assert all(pair(int(representative[inverse[e]])) == pair(e) for e in range(6))
    empty = edge_pairs(torch.zeros(2, 0, dtype=torch.long), 3)
    assert empty[0].shape == (0,) and empty[1].shape == (0,)
