"""The compiled spherical harmonics against the PyTorch path (the fallback and reference)."""
import warnings

import pytest
import torch

from equiscale import _kernels
from equiscale._kernels import spherical_harmonics as kernel
from equiscale.o3 import spherical_harmonics
from equiscale.o3._sh_fast import spherical_harmonics_kernel as torch_path
from equiscale.o3._sh_recurrence import spherical_harmonics_plain

pytestmark = pytest.mark.skipif(not _kernels.load(), reason="compiled kernels unavailable")

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _points(n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    x = torch.randn(n, 3, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    if n >= 3:
        x[0] = 0.0  # e3nn maps a zero vector to x / 1e-12
        x[1] = 1e-13  # inside the eps ball: homogeneous harmonics of x / eps
        x[2] *= 1e3
    return x


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> None:
    scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
    assert a.shape == b.shape and a.dtype == b.dtype
    assert (a - b).abs().max().item() <= TOL[dtype] * scale if a.numel() else True


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lmax", [0, 1, 2, 3, 4, 6, 8, 9, 11])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("normalization", ["integral", "component", "norm"])
def test_forward_and_backward_equal_the_torch_path(dtype, lmax, normalize, normalization):
    ls = tuple(range(lmax + 1))
    x = _points(700, dtype).requires_grad_(True)
    w = torch.randn(700, (lmax + 1) ** 2, dtype=dtype)
    y = kernel.spherical_harmonics(ls, x, normalize, normalization)
    ref = torch_path(ls, x, normalize, normalization)
    _close(y, ref, dtype)
    (g,) = torch.autograd.grad(y, x, w)
    (g_ref,) = torch.autograd.grad(ref, x, w)
    _close(g, g_ref, dtype)


def test_selected_degrees_and_public_function_use_the_kernel(monkeypatch):
    x = _points(50, torch.float64)
    ls = [3, 1, 1, 0]
    expected = spherical_harmonics_plain(ls, x, True, "integral")
    _close(kernel.spherical_harmonics(ls, x, True, "integral"), expected, torch.float64)
    calls = []
    original = kernel.spherical_harmonics
    monkeypatch.setattr(kernel, "spherical_harmonics", lambda *a: calls.append(1) or original(*a))
    _close(spherical_harmonics(ls, x.reshape(5, 10, 3), True).reshape(50, -1), expected, torch.float64)
    assert calls, "the public function did not route through the compiled kernel"


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("lmax", [0, 1, 3, 9])
def test_gradcheck_and_gradgradcheck(normalize, lmax):
    x = _points(6, torch.float64, seed=1)[3:].requires_grad_(True)  # away from the eps ball
    ls = tuple(range(lmax + 1))
    assert torch.autograd.gradcheck(lambda v: kernel.spherical_harmonics(ls, v, normalize, "component"), (x,))
    assert torch.autograd.gradgradcheck(lambda v: kernel.spherical_harmonics(ls, v, normalize, "component"), (x,))


def test_backward_op_gradcheck_in_both_arguments():
    x = _points(5, torch.float64, seed=2)[3:].requires_grad_(True)
    g = torch.randn(2, 16, dtype=torch.float64, requires_grad=True)
    op = torch.ops.equiscale.spherical_harmonics_backward
    assert torch.autograd.gradcheck(lambda a, b: op(a, b, 3, True, "integral"), (g, x))


def test_forces_style_double_backward_matches_torch_path():
    """Energy -> forces by create_graph, then a loss on the forces back to the inputs."""
    x = _points(43, torch.float64, seed=3)[3:]  # second derivatives blow up in the eps ball
    w = torch.randn(40, 25, dtype=torch.float64)

    def second(f):
        xd = x.clone().requires_grad_(True)
        energy = (f(xd) * w).sum()
        (forces,) = torch.autograd.grad(energy, xd, create_graph=True)
        (g,) = torch.autograd.grad((forces**2).sum(), xd)
        return g

    ls = tuple(range(5))
    _close(second(lambda v: kernel.spherical_harmonics(ls, v, True, "integral")),
           second(lambda v: spherical_harmonics_plain(ls, v, True, "integral")), torch.float64)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_empty_and_non_contiguous_inputs(dtype):
    ls = tuple(range(4))
    empty = torch.zeros(0, 3, dtype=dtype, requires_grad=True)
    y = kernel.spherical_harmonics(ls, empty, True, "integral")
    assert y.shape == (0, 16)
    (g,) = torch.autograd.grad(y, empty, torch.ones_like(y))
    assert g.shape == (0, 3)
    wide = torch.randn(300, 7, dtype=dtype)
    x = wide[:, 1:6:2]  # column stride 2, row stride 7
    assert not x.is_contiguous()
    xg = x.detach().requires_grad_(True)
    y = kernel.spherical_harmonics(ls, xg, True, "integral")
    _close(y, torch_path(ls, x.contiguous(), True, "integral"), dtype)
    w = torch.randn(16, 300, dtype=dtype).t()  # a non-contiguous gradient
    (g,) = torch.autograd.grad(y, xg, w)
    (g_ref,) = torch.autograd.grad(torch_path(ls, xg, True, "integral"), xg, w)
    _close(g, g_ref, dtype)


def test_torch_compile_fullgraph_traces_the_op():
    torch._dynamo.reset()
    ls = [0, 1, 2, 3]

    def f(v):
        return (spherical_harmonics(ls, v, True) ** 2).sum(-1)

    compiled = torch.compile(f, fullgraph=True, dynamic=False)
    x = _points(64, torch.float32).requires_grad_(True)
    out = compiled(x)
    _close(out, f(x), torch.float32)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(f(x).sum(), x)
    _close(g, g_ref, torch.float32)


def test_fake_tensor_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(11, 3)
        assert torch.ops.equiscale.spherical_harmonics(x, 5, True, "norm").shape == (11, 36)
        g = torch.empty(11, 36)
        assert torch.ops.equiscale.spherical_harmonics_backward(g, x, 5, True, "norm").shape == (11, 3)


def test_env_off_runs_the_torch_path_with_equal_results(monkeypatch):
    x = _points(100, torch.float64)
    with_kernel = spherical_harmonics(4, x, True)
    monkeypatch.setenv("EQUISCALE_KERNELS", "off")
    monkeypatch.setattr(kernel, "spherical_harmonics", None)  # must not be called
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _close(spherical_harmonics(4, x, True), with_kernel, torch.float64)


def test_equivariance_float64():
    from equiscale.o3 import Irreps, rand_matrix

    R = rand_matrix(dtype=torch.float64)
    x = _points(30, torch.float64, seed=4)[3:]
    ls = tuple(range(7))
    D = Irreps("+".join(f"{l}{'e' if l % 2 == 0 else 'o'}" for l in ls)).D_from_matrix(R)
    rotated = kernel.spherical_harmonics(ls, x @ R.T, True, "integral")
    _close(rotated, kernel.spherical_harmonics(ls, x, True, "integral") @ D.T, torch.float64)


def test_torch_export():
    class Harmonics(torch.nn.Module):
        def forward(self, v):
            return spherical_harmonics([0, 1, 2], v, True)

    x = _points(10, torch.float32)
    program = torch.export.export(Harmonics(), (x,))
    assert any("equiscale.spherical_harmonics" in str(node.target) for node in program.graph.nodes)
    _close(program.module()(x), Harmonics()(x), torch.float32)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_large_inputs_on_several_threads(threads):
    """Enough points for the kernels' own worker threads (chunks handed out on demand)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = _points(60_000, torch.float64, seed=7).requires_grad_(True)
        ls = tuple(range(5))
        w = torch.randn(60_000, 25, dtype=torch.float64)
        for _ in range(3):  # several jobs in a row on the same workers
            y = kernel.spherical_harmonics(ls, x, True, "integral")
            (g,) = torch.autograd.grad(y, x, w)
        _close(y, torch_path(ls, x, True, "integral"), torch.float64)
        (g_ref,) = torch.autograd.grad(torch_path(ls, x, True, "integral"), x, w)
        _close(g, g_ref, torch.float64)
    finally:
        torch.set_num_threads(before)


def test_forked_child_after_the_workers_started():
    """A DataLoader-style fork after the kernel's worker threads exist: the child still computes.

    The child touches no other threaded torch op (torch's own OpenMP runtime does not survive a
    fork, which is why DataLoader workers run one thread); it returns a numpy checksum.
    """
    import multiprocessing

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        expected = kernel.spherical_harmonics((0, 1, 2), _FORK_INPUT, True, "integral")  # starts the workers
        with multiprocessing.get_context("fork").Pool(1) as pool:
            result = pool.apply(_child_checksum)
        assert abs(result - float(expected.numpy().sum())) <= 1e-9 * expected.numel()
    finally:
        torch.set_num_threads(before)


_FORK_INPUT = torch.randn(60_000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))


def _child_checksum() -> float:
    torch.set_num_threads(2)
    return float(kernel.spherical_harmonics((0, 1, 2), _FORK_INPUT, True, "integral").numpy().sum())
