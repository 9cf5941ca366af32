"""The compiled shared-weight tensor product against the PyTorch path (the fallback and reference)."""
import pytest
import torch

from equiscale import _kernels
from equiscale._kernels import tensor_product as kernel
from equiscale.o3 import FullyConnectedTensorProduct, TensorProduct

pytestmark = pytest.mark.skipif(not _kernels.load(), reason="compiled kernels unavailable")

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}

CASES = [
    ("4x0e+4x1o+4x2e", "0e+1o+2e", "4x0e+4x1o+4x2e", {}),
    # unused input blocks, unreached output blocks, l = 3, several multiplicities, other normalisations
    ("3x0e+2x1o+2x2e+1x3o+2x1e", "1x0e+1x1o", "2x0e+3x1o+1x2e+2x3o+1x4e",
     dict(irrep_normalization="norm", path_normalization="path")),
    ("5x0e+3x1e", "1x1o+1x0e", "2x1o+2x0e+1x2o", dict(in1_var=[2.0, 0.5], out_var=[1.0, 3.0, 1.0])),
    # second input with multiplicities (one planned path per copy), as in a product of two features
    ("3x0e+2x1o+1x2e", "2x0e+3x1o+2x2e", "2x0e+2x1o+1x2e", {}),
]


def _tp(case, dtype):
    i1, i2, out, kwargs = case
    torch.manual_seed(0)
    return FullyConnectedTensorProduct(i1, i2, out, **kwargs).to(dtype)


def _both_paths(monkeypatch, tp, *inputs):
    """(compiled, PyTorch) outputs and gradients of <g, tp(*inputs)> for x, y and the weights."""
    results = []
    for setting in (None, "off"):
        if setting:
            monkeypatch.setenv("EQUISCALE_KERNELS", setting)
        leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
        tp.weight.grad = None
        out = tp(*leaves)
        g = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
        grads = torch.autograd.grad(out, leaves + [tp.weight], g)
        results.append((out, grads))
    monkeypatch.delenv("EQUISCALE_KERNELS")
    return results


def _close(a, b, dtype):
    assert a.shape == b.shape
    if a.numel():
        assert (a - b).abs().max().item() <= TOL[dtype] * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES)
def test_equals_the_torch_path(monkeypatch, case, dtype):
    tp = _tp(case, dtype)
    assert tp._uvw_plan is not None
    x = torch.randn(77, tp.irreps_in1.dim, dtype=dtype)
    y = torch.randn(77, tp.irreps_in2.dim, dtype=dtype)
    (out, grads), (ref, ref_grads) = _both_paths(monkeypatch, tp, x, y)
    _close(out, ref, dtype)
    for g, r in zip(grads, ref_grads):
        _close(g, r, dtype)


def test_module_routes_through_the_kernel(monkeypatch):
    tp = _tp(CASES[0], torch.float64)
    calls = []
    original = kernel.tensor_product_uvw
    monkeypatch.setattr(kernel, "tensor_product_uvw", lambda *a: calls.append(1) or original(*a))
    tp(torch.randn(3, tp.irreps_in1.dim, dtype=torch.float64), torch.randn(3, 9, dtype=torch.float64))
    assert calls
    uvu = TensorProduct("2x0e+2x1o", "0e+1o", "2x0e+2x1o", [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True)])
    assert uvu._uvw_plan is None  # not a shared-weight uvw product: the PyTorch kernels


def test_twin_equals_the_op():
    tp = _tp(CASES[1], torch.float64)
    x = torch.randn(9, tp.irreps_in1.dim, dtype=torch.float64)
    y = torch.randn(9, tp.irreps_in2.dim, dtype=torch.float64)
    plan = tp._uvw_plan
    _close(kernel.tensor_product_uvw(plan, x, y, tp.weight.detach()),
           kernel.twin(x, y, tp.weight.detach(), *plan.tensors(), plan.dim_out), torch.float64)


@pytest.mark.parametrize("case", CASES[1:])
def test_gradcheck_and_gradgradcheck(case):
    tp = _tp(case, torch.float64)
    plan = tp._uvw_plan
    x = torch.randn(3, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, tp.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
    w = tp.weight.detach().clone().requires_grad_(True)

    def f(a, b, c):
        return kernel.tensor_product_uvw(plan, a, b, c)

    assert torch.autograd.gradcheck(f, (x, y, w))
    assert torch.autograd.gradgradcheck(f, (x, y, w))


def test_forces_style_double_backward(monkeypatch):
    """A loss on d(energy)/dy, differentiated to the weights and x, equals the PyTorch path."""
    tp = _tp(CASES[0], torch.float64)
    x = torch.randn(11, tp.irreps_in1.dim, dtype=torch.float64)
    y0 = torch.randn(11, tp.irreps_in2.dim, dtype=torch.float64)
    results = []
    for setting in (None, "off"):
        if setting:
            monkeypatch.setenv("EQUISCALE_KERNELS", setting)
        xs, y = x.clone().requires_grad_(True), y0.clone().requires_grad_(True)
        energy = tp(xs, y)[:, :4].sum()
        (dy,) = torch.autograd.grad(energy, y, create_graph=True)
        results.append(torch.autograd.grad((dy**2).sum(), (xs, tp.weight)))
    for a, b in zip(*results):
        _close(a, b, torch.float64)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_empty_broadcast_and_non_contiguous(monkeypatch, dtype):
    tp = _tp(CASES[0], dtype)
    empty = tp(torch.zeros(0, tp.irreps_in1.dim, dtype=dtype), torch.zeros(0, 9, dtype=dtype))
    assert empty.shape == (0, tp.irreps_out.dim)
    x = torch.randn(5, 1, tp.irreps_in1.dim, dtype=dtype)
    y = torch.randn(1, 4, 9, dtype=dtype)
    (out, grads), (ref, ref_grads) = _both_paths(monkeypatch, tp, x, y)
    assert out.shape == (5, 4, tp.irreps_out.dim)
    _close(out, ref, dtype)
    for g, r in zip(grads, ref_grads):
        _close(g, r, dtype)
    wide = torch.randn(30, 2 * tp.irreps_in1.dim, dtype=dtype)[:, ::2]
    ys = torch.randn(9, 30, dtype=dtype).t()
    assert not wide.is_contiguous() and not ys.is_contiguous()
    plan = tp._uvw_plan
    w = tp.weight.detach()
    _close(kernel.tensor_product_uvw(plan, wide, ys, w),
           kernel.tensor_product_uvw(plan, wide.contiguous(), ys.contiguous(), w), dtype)


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    tp = _tp(CASES[0], torch.float32)
    x = torch.randn(16, tp.irreps_in1.dim, requires_grad=True)
    y = torch.randn(16, 9)
    compiled = torch.compile(tp, fullgraph=True, dynamic=False)
    out = compiled(x, y)
    _close(out, tp(x, y), torch.float32)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(tp(x, y).sum(), x)
    _close(g, g_ref, torch.float32)


def test_equivariance_float64():
    from equiscale.o3 import rand_matrix

    tp = _tp(CASES[1], torch.float64)
    R = rand_matrix(dtype=torch.float64)
    D1, D2, Do = (irreps.D_from_matrix(R) for irreps in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
    x = torch.randn(8, tp.irreps_in1.dim, dtype=torch.float64)
    y = torch.randn(8, tp.irreps_in2.dim, dtype=torch.float64)
    _close(tp(x @ D1.T, y @ D2.T), tp(x, y) @ Do.T, torch.float64)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_many_tiles_on_several_threads(monkeypatch, threads):
    """Enough rows for the kernel's worker threads (with single-threaded BLAS inside each chunk)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tp = _tp(CASES[0], torch.float64)
        x = torch.randn(3000, tp.irreps_in1.dim, dtype=torch.float64)
        y = torch.randn(3000, tp.irreps_in2.dim, dtype=torch.float64)
        (out, grads), (ref, ref_grads) = _both_paths(monkeypatch, tp, x, y)
        _close(out, ref, torch.float64)
        for g, r in zip(grads, ref_grads):
            _close(g, r, torch.float64)
    finally:
        torch.set_num_threads(before)
