"""``o3.TensorProduct`` with ``uvu`` paths and per-sample weights on the compiled channelwise kernel
(``uvu_scatter`` with each row its own edge) against the PyTorch path (the fallback and reference)."""
import pytest
import torch

from equiscale import _kernels
from equiscale._kernels import message_passing as mp_kernel
from equiscale.o3 import Irreps, TensorProduct, rand_matrix

pytestmark = pytest.mark.skipif(not _kernels.load(), reason="compiled kernels unavailable")

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _nequip(irreps1: str, irreps2: str) -> TensorProduct:
    """NequIP's convolution (benchmarks/tensor_product.py case (b)): one output block per path."""
    out, ins = [], []
    for i1, (mul, ir1) in enumerate(Irreps(irreps1)):
        for i2, (_, ir2) in enumerate(Irreps(irreps2)):
            for ir in ir1 * ir2:
                if ir.l <= 2:
                    ins.append((i1, i2, len(out), "uvu", True))
                    out.append((mul, str(ir)))
    return TensorProduct(irreps1, irreps2, out, ins, shared_weights=False, internal_weights=False)


def _shared_outputs() -> TensorProduct:
    """Several paths into one output block, l = 3 (generic sizes), an unused second-input block of
    multiplicity 2, an explicit path weight, other normalisations and variances."""
    ins = [(0, 0, 0, "uvu", True), (0, 1, 5, "uvu", True), (1, 1, 4, "uvu", True), (2, 3, 4, "uvu", True),
           (1, 0, 1, "uvu", True), (2, 1, 1, "uvu", True), (2, 0, 2, "uvu", True), (1, 1, 2, "uvu", True),
           (3, 3, 3, "uvu", True), (3, 0, 3, "uvu", True, 0.5)]
    return TensorProduct("3x0e+2x1o+2x2e+1x3o", "1x0e+1x1o+2x0e+1x2e", "3x0e+2x1o+2x2e+1x3o+2x0e+3x1o", ins,
                         irrep_normalization="norm", path_normalization="path", in1_var=[1.0, 2.0, 0.5, 1.0],
                         out_var=[1.0, 1.0, 3.0, 1.0, 1.0, 0.7], shared_weights=False)


CASES = {
    "nequip": lambda: _nequip("4x0e+4x1o+4x2e", "0e+1o+2e"),
    "shared-outputs-l3": _shared_outputs,
    "wide": lambda: _nequip("19x0e+11x1o+9x2e", "0e+1o+2e"),  # channels off the vector width
}


def _tp(case, dtype):
    torch.manual_seed(0)
    tp = CASES[case]().to(dtype)
    assert tp._uvu_metadata is not None
    return tp


def _close(a, b, dtype):
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.numel():
        assert (a - b).abs().max().item() <= TOL[dtype] * max(1.0, b.abs().max().item())


def _both_paths(monkeypatch, tp, x, y, w):
    """(compiled, PyTorch): output, gradients of <g, out> to (x, y, w), and the gradients of a
    scalar of those gradients (second order, as when training on forces)."""
    results = []
    for setting in (None, "off"):
        if setting:
            monkeypatch.setenv("EQUISCALE_KERNELS", setting)
        leaves = [t.detach().clone().requires_grad_(True) for t in (x, y, w)]
        out = tp(*leaves)
        g = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
        grads = torch.autograd.grad(out, leaves, g, create_graph=True)
        probe = sum((gr * torch.linspace(-2, 1, gr.numel(), dtype=gr.dtype).reshape(gr.shape)).sum() for gr in grads)
        second = torch.autograd.grad(probe, leaves, allow_unused=True) if out.numel() else (None,) * 3
        results.append((out, grads, second))
    monkeypatch.delenv("EQUISCALE_KERNELS")
    return results


def _check(results, dtype):
    (out, grads, second), (ref, ref_grads, ref_second) = results
    _close(out, ref, dtype)
    for a, b in zip(grads, ref_grads):
        _close(a, b, dtype)
    for a, b in zip(second, ref_second):
        assert (a is None) == (b is None)
        if a is not None:
            _close(a, b, dtype)


def _inputs(tp, shape_x, shape_y, shape_w, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape_x, tp.irreps_in1.dim, generator=g, dtype=dtype),
            torch.randn(*shape_y, tp.irreps_in2.dim, generator=g, dtype=dtype),
            torch.randn(*shape_w, tp.weight_numel, generator=g, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_equals_the_torch_path(monkeypatch, case, dtype):
    tp = _tp(case, dtype)
    _check(_both_paths(monkeypatch, tp, *_inputs(tp, (37,), (37,), (37,), dtype)), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batch_dims_broadcast_non_contiguous_and_zero_rows(monkeypatch, dtype):
    tp = _tp("shared-outputs-l3", dtype)
    # leading dims (2, 5) flattened; y broadcast over the first, w over the second
    x, y, w = _inputs(tp, (2, 5), (5,), (2, 1), dtype)
    results = _both_paths(monkeypatch, tp, x, y, w)
    assert results[0][0].shape == (2, 5, tp.irreps_out.dim)
    _check(results, dtype)
    # x broadcast instead (one row for all), w full
    x, y, w = _inputs(tp, (1,), (6,), (6,), dtype, seed=1)
    _check(_both_paths(monkeypatch, tp, x, y, w), dtype)
    # non-contiguous views
    g = torch.Generator().manual_seed(2)
    xs = torch.randn(9, 2 * tp.irreps_in1.dim, generator=g, dtype=dtype)[:, ::2]
    ys = torch.randn(tp.irreps_in2.dim, 9, generator=g, dtype=dtype).t()
    ws = torch.randn(9, tp.weight_numel + 3, generator=g, dtype=dtype)[:, 3:]
    assert not (xs.is_contiguous() or ys.is_contiguous() or ws.is_contiguous())
    _check(_both_paths(monkeypatch, tp, xs, ys, ws), dtype)
    # zero rows
    x, y, w = _inputs(tp, (0,), (0,), (0,), dtype)
    results = _both_paths(monkeypatch, tp, x, y, w)
    assert results[0][0].shape == (0, tp.irreps_out.dim)
    _check(results, dtype)


def test_module_routes_through_the_kernel(monkeypatch):
    tp = _tp("nequip", torch.float64)
    calls = []
    original = mp_kernel.uvu_scatter
    monkeypatch.setattr(mp_kernel, "uvu_scatter", lambda *a: calls.append(1) or original(*a))
    x, y, w = _inputs(tp, (3,), (3,), (3,), torch.float64)
    tp(x, y, w)
    assert calls
    # EQUISCALE_KERNELS=off: the PyTorch path, the kernel never called
    monkeypatch.setattr(mp_kernel, "uvu_scatter", lambda *a: pytest.fail("the kernel ran with kernels off"))
    monkeypatch.setenv("EQUISCALE_KERNELS", "off")
    assert tp(x, y, w).shape == (3, tp.irreps_out.dim)


def test_products_the_kernel_does_not_take():
    ins = [(0, 0, 0, "uvu", True), (1, 1, 0, "uvu", True)]
    shared = TensorProduct("2x0e+2x1o", "0e+1o", "2x0e", ins)
    assert shared._uvu_metadata is None  # shared weights
    assert TensorProduct("2x0e+2x1o", "2x0e+1o", "2x0e", ins, shared_weights=False)._uvu_metadata is None  # mul_in2 > 1
    unreached = TensorProduct("2x0e+2x1o", "0e+1o", "2x0e+2x1o", ins, shared_weights=False)
    assert unreached._uvu_metadata is None  # output block 1 not reached
    unweighted = [(0, 0, 0, "uvu", False)]
    assert TensorProduct("2x0e", "0e", "2x0e", unweighted, shared_weights=False)._uvu_metadata is None
    mixed = [(0, 0, 0, "uvu", True), (0, 0, 1, "uvw", True)]
    assert TensorProduct("2x0e", "0e", "2x0e+3x0e", mixed, shared_weights=False)._uvu_metadata is None
    high = _nequip("2x8e", "0e")  # l = 8: beyond the kernel
    assert high._uvu_metadata is None


@pytest.mark.parametrize("case", ["nequip", "shared-outputs-l3"])
def test_gradcheck_and_gradgradcheck(case):
    tp = _tp(case, torch.float64)
    x, y, w = (t.requires_grad_(True) for t in _inputs(tp, (3,), (3,), (3,), torch.float64))
    assert torch.autograd.gradcheck(tp, (x, y, w))
    assert torch.autograd.gradgradcheck(tp, (x, y, w))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    tp = _tp("nequip", torch.float32)
    x, y, w = _inputs(tp, (16,), (16,), (16,), torch.float32)
    x.requires_grad_(True)
    w.requires_grad_(True)
    compiled = torch.compile(tp, fullgraph=True, dynamic=False)
    out = compiled(x, y, w)
    ref = tp(x, y, w)
    _close(out, ref, torch.float32)
    grads = torch.autograd.grad(out.square().sum(), (x, w))
    ref_grads = torch.autograd.grad(ref.square().sum(), (x, w))
    for a, b in zip(grads, ref_grads):
        _close(a, b, torch.float32)


def test_equivariance_float64():
    tp = _tp("shared-outputs-l3", torch.float64)
    R = rand_matrix(dtype=torch.float64)
    D1, D2, Do = (irreps.D_from_matrix(R) for irreps in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
    x, y, w = _inputs(tp, (8,), (8,), (8,), torch.float64)
    _close(tp(x @ D1.T, y @ D2.T, w), tp(x, y, w) @ Do.T, torch.float64)
    # parity too (O(3)): -identity
    P1, P2, Po = (irreps.D_from_matrix(-torch.eye(3, dtype=torch.float64))
                  for irreps in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
    _close(tp(x @ P1.T, y @ P2.T, w), tp(x, y, w) @ Po.T, torch.float64)


@pytest.mark.parametrize("threads", [1, 2])
def test_many_rows_on_several_threads(monkeypatch, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tp = _tp("wide", torch.float64)
        _check(_both_paths(monkeypatch, tp, *_inputs(tp, (1500,), (1500,), (1500,), torch.float64)), torch.float64)
    finally:
        torch.set_num_threads(before)
