"""TensorProduct and its ready-made variants against e3nn 0.6 (test-only dependency).

e3nn builds its 3j tensors in torch's default dtype, so float64 references are taken with the
default dtype set to float64 inside a try/finally (here only, never in equiscale).
"""
import contextlib

import pytest
import torch

from tests.helpers import default_dtype

from equiscale.o3 import _tp_fast
from equiscale.o3._irreps import Irreps
from equiscale.o3._tensor_product import TensorProduct
from equiscale.o3._tp_sub import (ElementwiseTensorProduct, FullTensorProduct,
                                  FullyConnectedTensorProduct, TensorSquare)

pytest.importorskip("e3nn")
from e3nn import o3 as e3  # noqa: E402

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def fast_e3nn_construction():
    """e3nn's TorchScript/einsum optimisation only slows its construction here (restored after)."""
    import e3nn
    before = e3nn.get_optimization_defaults()
    e3nn.set_optimization_defaults(jit_script_fx=False, optimize_einsums=False)
    try:
        yield
    finally:
        e3nn.set_optimization_defaults(**before)


@contextlib.contextmanager
def one_thread():
    """Many tiny evaluations (gradcheck) run faster without the thread pool (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def instructions_for(mode, irreps1, irreps2, lmax=3):
    """Every allowed path for ``mode`` with one output block each, and the output irreps."""
    out, ins = [], []
    for i1, (m1, ir1) in enumerate(Irreps(irreps1)):
        for i2, (m2, ir2) in enumerate(Irreps(irreps2)):
            if mode[:2] == "uu" and m1 != m2:
                continue
            for ir in ir1 * ir2:
                if ir.l > lmax:
                    continue
                mo = {"uvw": 3, "uvu": m1, "uvv": m2, "uuw": 2, "uuu": m1, "uvuv": m1 * m2}[mode]
                ins.append((i1, i2, len(out), mode, True))
                out.append((mo, ir))
    return Irreps(out), ins


def pair(make, dtype, *inputs_irreps, batch=(7,), seed=0):
    """Build e3nn's and our module with the same weights, and matching random inputs."""
    with default_dtype(dtype):
        torch.manual_seed(seed)
        ref = make(e3)
        ours = make(None)
        ours.load_state_dict(ref.state_dict())
        xs = [torch.randn(*batch, Irreps(i).dim, dtype=dtype) for i in inputs_irreps]
    return ref, ours, xs


def run_ref(ref, dtype, *args):
    with default_dtype(dtype):
        return ref(*args)


IRREPS1 = "2x0e + 3x1o + 2x2e + 1x3o"
IRREPS2_MULTI = "2x0e + 2x1o + 1x2e"
IRREPS2_SH = "0e + 1o + 2e + 3o"  # multiplicity one: the fast kernels


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (F64, 1e-10)])
@pytest.mark.parametrize("irreps2", [IRREPS2_MULTI, IRREPS2_SH])
@pytest.mark.parametrize("mode", ["uvw", "uvu", "uvv", "uuw", "uuu", "uvuv"])
@pytest.mark.parametrize("shared", [True, False])
def test_modes_match_e3nn(mode, irreps2, shared, dtype, tol):
    irreps1 = IRREPS1 if mode[:2] != "uu" else "2x0e + 2x1o + 1x2e + 1x3o"
    irreps2 = irreps2 if mode[:2] != "uu" else IRREPS2_MULTI
    out, ins = instructions_for(mode, irreps1, irreps2)

    def make(lib):
        cls = lib.TensorProduct if lib else TensorProduct
        return cls(irreps1, irreps2, out, ins, shared_weights=shared,
                   internal_weights=shared)

    ref, ours, (x, y) = pair(make, dtype, irreps1, irreps2)
    w = None if shared else torch.randn(7, ref.weight_numel, dtype=dtype)
    x.requires_grad_(True)
    y.requires_grad_(True)
    a = run_ref(ref, dtype, x, y, w)
    b = ours(x, y, w)
    assert b.dtype == dtype and b.shape == a.shape
    assert rel_err(b, a) <= tol
    g = torch.randn_like(a)
    params = [x, y] + ([ours.weight] if shared else [])
    ga = torch.autograd.grad(a, [x, y] + ([ref.weight] if shared else []), g)
    gb = torch.autograd.grad(b, params, g)
    for p, q in zip(gb, ga):
        assert rel_err(p, q) <= tol


@pytest.mark.parametrize("irrep_normalization", ["component", "norm", "none"])
@pytest.mark.parametrize("path_normalization", ["element", "path", "none"])
@pytest.mark.parametrize("irreps2", [IRREPS2_MULTI, IRREPS2_SH])
def test_normalizations_match_e3nn(irrep_normalization, path_normalization, irreps2):
    out, ins = instructions_for("uvu", IRREPS1, irreps2)
    ins = ins + [(0, 0, 0, "uvu", True, 2.0)] if irreps2 == IRREPS2_SH else ins

    def make(lib):
        cls = lib.TensorProduct if lib else TensorProduct
        return cls(IRREPS1, irreps2, out, ins, in1_var=[1.0, 2.0, 0.5, 1.5], out_var=None,
                   irrep_normalization=irrep_normalization, path_normalization=path_normalization)

    ref, ours, (x, y) = pair(make, F64, IRREPS1, irreps2)
    assert [i.path_weight for i in ours.instructions] == pytest.approx(
        [i.path_weight for i in ref.instructions], rel=1e-12)
    assert rel_err(ours(x, y), run_ref(ref, F64, x, y)) <= 1e-10


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (F64, 1e-10)])
@pytest.mark.parametrize("kind", ["fc", "fc_sh", "elementwise", "full", "square", "square_fc"])
def test_ready_made_products_match_e3nn(kind, dtype, tol):
    local = {"fc": FullyConnectedTensorProduct, "fc_sh": FullyConnectedTensorProduct,
             "elementwise": ElementwiseTensorProduct, "full": FullTensorProduct,
             "square": TensorSquare, "square_fc": TensorSquare}[kind]
    args = {"fc": (IRREPS1, IRREPS2_MULTI, "3x0e + 2x1o + 2x1e + 2x2e + 1x3o"),
            "fc_sh": ("4x0e + 4x1o + 4x2e", IRREPS2_SH, "4x0e + 4x1o + 4x2e + 2x3o"),
            "elementwise": (IRREPS1, "1x0e + 4x1o + 2x2e + 1x1e"),
            "full": ("2x0e + 1x1o", IRREPS2_MULTI), "square": ("3x0e + 2x1o + 1x2e",),
            "square_fc": ("3x0e + 2x1o + 1x2e", "2x0e + 2x1o + 2x2e")}[kind]

    def make(lib):
        return getattr(lib, local.__name__)(*args) if lib else local(*args)

    ref, ours, _ = pair(make, dtype)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    assert ours.irreps_out == ref.irreps_out and repr(ours) == repr(ref)
    n_in = 1 if kind.startswith("square") else 2
    ins = [torch.randn(6, Irreps(a).dim, dtype=dtype) for a in args[:n_in]]
    if kind.startswith("square"):
        ins = [torch.randn(6, Irreps(args[0]).dim, dtype=dtype)]
    assert rel_err(ours(*ins), run_ref(ref, dtype, *ins)) <= tol


def nequip_uvu(lib, irreps1="4x0e + 4x1o + 4x2e", irreps2="0e + 1o + 2e", shared=False):
    """NequIP's convolution: channelwise uvu, one output block per path, per-edge weights."""
    out, ins = [], []
    for i1, (m1, ir1) in enumerate(Irreps(irreps1)):
        for i2, (_, ir2) in enumerate(Irreps(irreps2)):
            for ir in ir1 * ir2:
                if ir.l <= 2:
                    ins.append((i1, i2, len(out), "uvu", True))
                    out.append((m1, ir))
    cls = lib.TensorProduct if lib else TensorProduct
    return cls(irreps1, irreps2, out, ins, shared_weights=shared, internal_weights=shared)


def test_state_dict_round_trip_both_ways():
    ref = e3.FullyConnectedTensorProduct(IRREPS1, IRREPS2_SH, "2x0e + 2x1o + 2x2e")
    ours = FullyConnectedTensorProduct(IRREPS1, IRREPS2_SH, "2x0e + 2x1o + 2x2e")
    sd = ref.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in sd.items()}
    ours.load_state_dict(sd)
    assert torch.equal(ours.weight, ref.weight)
    back = e3.FullyConnectedTensorProduct(IRREPS1, IRREPS2_SH, "2x0e + 2x1o + 2x2e")
    back.load_state_dict(ours.state_dict())  # and e3nn loads ours
    assert torch.equal(back.weight, ref.weight)
    pe, po = nequip_uvu(e3), nequip_uvu(None)
    po.load_state_dict(pe.state_dict())
    assert sorted(po.state_dict()) == sorted(pe.state_dict())


def test_broadcasting_and_weight_forms():
    ref, ours = nequip_uvu(e3), nequip_uvu(None)
    x = torch.randn(2, 1, ref.irreps_in1.dim)
    y = torch.randn(1, 3, ref.irreps_in2.dim)
    w = torch.randn(3, ref.weight_numel)
    a, b = ref(x, y, w), ours(x, y, w)
    assert b.shape == (2, 3, ref.irreps_out.dim) and rel_err(b, a) <= 1e-5
    ws = [v.clone() for v in ref.weight_views(w)]  # list of per-instruction weights
    assert rel_err(ours(x, y, ws), a) <= 1e-5
    assert [v.shape for v in ours.weight_views(w)] == [v.shape for v in ref.weight_views(w)]
    fc = FullyConnectedTensorProduct("2x0e + 1x1o", "0e + 1o", "2x0e + 1x1o")
    yy = torch.randn(5, 4)
    op = fc.right(yy)
    xx = torch.randn(5, 5)
    assert op.shape == (5, 5, 5)
    assert rel_err(torch.einsum("ni,nio->no", xx, op), fc(xx, yy)) <= 1e-5


def test_no_weights_and_empty_inputs():
    ins = [(0, 0, 0, "uvu", False), (0, 0, 1, "uvu", False)]
    tp = TensorProduct("2x1o", "1o", "2x0e + 2x1e", ins)
    ref = e3.TensorProduct("2x1o", "1o", "2x0e + 2x1e", ins)
    x, y = torch.randn(4, 6), torch.randn(4, 3)
    assert tp.weight_numel == 0 and rel_err(tp(x, y), ref(x, y)) <= 1e-5
    assert tp(torch.randn(0, 6), torch.randn(0, 3)).shape == (0, 8)
    lone = TensorProduct("2x1o", "1o", "2x0e + 3x2e", [(0, 0, 0, "uvu", True)])
    assert torch.all(lone(x, y)[:, 2:] == 0)  # an output block without a path is zero


def test_chunked_kernels_match_reference(monkeypatch):
    """Many small chunks (the CPU path) give the same numbers, forward and backward."""
    ref, ours = nequip_uvu(e3), nequip_uvu(None)
    x = torch.randn(300, ref.irreps_in1.dim, requires_grad=True)
    y = torch.randn(300, ref.irreps_in2.dim, requires_grad=True)
    w = torch.randn(300, ref.weight_numel, requires_grad=True)
    monkeypatch.setattr(_tp_fast, "_CHUNK_ELEMENTS", 3000)
    assert ours._fast_plan.chunk_size(300, x.device, _tp_fast._CHUNK_ELEMENTS) < 300
    a, b = ref(x, y, w), ours(x, y, w)
    assert rel_err(b, a) <= 1e-5
    g = torch.randn_like(a)
    for p, q in zip(torch.autograd.grad(b, (x, y, w), g), torch.autograd.grad(a, (x, y, w), g)):
        assert rel_err(p, q) <= 1e-5


def test_mixed_fast_and_generic_paths():
    ins = [(0, 0, 0, "uvu", True), (1, 0, 1, "uvu", True), (1, 1, 0, "uvw", True),
           (0, 1, 1, "uvw", True), (1, 1, 2, "uuu", False), (0, 2, 0, "uvv", True),
           (1, 0, 1, "uvu", False)]

    def make(lib):
        return (lib.TensorProduct if lib else TensorProduct)(
            "3x0e + 2x1o", "1x0e + 2x1o + 3x0e", "3x0e + 2x1o + 2x1e", ins)

    ref, ours, (x, y) = pair(make, F64, "3x0e + 2x1o", "1x0e + 2x1o + 3x0e")
    assert ours._fast_plan is not None and ours._generic_paths
    assert rel_err(ours(x, y), run_ref(ref, F64, x, y)) <= 1e-10


def test_bad_input_raises_value_error():
    tp = FullyConnectedTensorProduct("2x0e + 1x1o", "0e + 1o", "2x1o")
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 5\)"):
        tp(torch.randn(3, 4), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"y: expected shape \(\.\.\., 4\)"):
        tp(torch.randn(3, 5), torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"weight: expected shape \(6,\)"):
        tp(torch.randn(3, 5), torch.randn(3, 4), torch.randn(11))
    pe = nequip_uvu(None)
    with pytest.raises(ValueError, match=r"weight: expected shape \(\.\.\., "):
        pe(torch.randn(3, pe.irreps_in1.dim), torch.randn(3, 9), torch.randn(3, 5))
    with pytest.raises(ValueError, match="weight: this TensorProduct has no internal weights"):
        pe(torch.randn(3, pe.irreps_in1.dim), torch.randn(3, 9))
    with pytest.raises(ValueError, match="selection rules"):
        TensorProduct("1o", "1o", "1o", [(0, 0, 0, "uvw", True)])  # parity
    with pytest.raises(ValueError, match="selection rules"):
        TensorProduct("1o", "1o", "3o", [(0, 0, 0, "uvw", True)])  # triangle
    with pytest.raises(ValueError, match="i_out"):
        TensorProduct("1o", "1o", "0e", [(0, 0, 1, "uvw", True)])
    with pytest.raises(ValueError, match="unknown mode"):
        TensorProduct("1o", "1o", "0e", [(0, 0, 0, "vvv", True)])
    with pytest.raises(ValueError, match="irrep_normalization"):
        TensorProduct("1o", "1o", "0e", [], irrep_normalization="bad")
    with pytest.raises(ValueError, match="in1_var"):
        TensorProduct("1o", "1o", "0e", [], in1_var=[1.0, 2.0])


def random_o3(n, dtype=F64):
    """Random O(3) elements: rotations at even indices, rotoreflections (det -1) at odd ones."""
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, dtype=dtype))
    q = q * torch.linalg.det(q).sign()[:, None, None]
    q[1::2] = -q[1::2]
    return q


@pytest.mark.parametrize("kind", ["nequip", "fc_sh", "generic"])
def test_equivariance_o3_float64(kind):
    torch.manual_seed(1)
    if kind == "nequip":
        tp = nequip_uvu(None, irreps1="3x0e + 2x1o + 2x2e + 1x3o", irreps2="0e + 1o + 2e + 3o")
    elif kind == "fc_sh":
        tp = FullyConnectedTensorProduct("3x0e + 2x1o + 2x2e + 1x3o", "0e + 1o + 2e + 3o",
                                         "2x0e + 2x0o + 2x1o + 2x1e + 2x2e + 2x3o")
    else:
        tp = FullyConnectedTensorProduct("2x0e + 2x1o + 1x2e", "2x0e + 1x1e + 1x3o",
                                         "3x0e + 2x1o + 2x2o")
    tp = tp.double()
    n = 5
    x = torch.randn(n, tp.irreps_in1.dim, dtype=F64)
    y = torch.randn(n, tp.irreps_in2.dim, dtype=F64)
    w = None if tp.shared_weights else torch.randn(n, tp.weight_numel, dtype=F64)
    R = random_o3(n)
    d1, d2, do = (Irreps(i).D_from_matrix(R) for i in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
    rot_first = tp(torch.einsum("nij,nj->ni", d1, x), torch.einsum("nij,nj->ni", d2, y), w)
    rot_after = torch.einsum("nij,nj->ni", do, tp(x, y, w))
    assert torch.linalg.det(R).lt(0).any() and torch.linalg.det(R).gt(0).any()
    assert (rot_first - rot_after).abs().max() <= 1e-10 * max(1.0, rot_after.abs().max().item())


@pytest.mark.parametrize("kind", ["uvu_edge", "uvu_shared", "uvw", "generic"])
def test_gradcheck_and_double_backward(kind):
    torch.manual_seed(2)
    if kind == "uvu_edge":
        tp = nequip_uvu(None, irreps1="1x0e + 1x1o + 1x2e", irreps2="0e + 1o + 2e")
    elif kind == "uvu_shared":
        tp = nequip_uvu(None, irreps1="1x0e + 1x1o + 1x2e", irreps2="0e + 1o + 2e", shared=True)
    elif kind == "uvw":
        tp = FullyConnectedTensorProduct("2x0e + 1x1o + 1x2e", "0e + 1o + 2e", "1x0e + 2x1o + 1x2e")
    else:
        tp = FullyConnectedTensorProduct("2x0e + 1x1o", "2x0e + 1x1o", "1x0e + 2x1o")
    tp = tp.double()
    n = 2
    x = torch.randn(n, tp.irreps_in1.dim, dtype=F64, requires_grad=True)
    y = torch.randn(n, tp.irreps_in2.dim, dtype=F64, requires_grad=True)
    if tp.shared_weights:
        w = torch.randn(tp.weight_numel, dtype=F64, requires_grad=True)
    else:
        w = torch.randn(n, tp.weight_numel, dtype=F64, requires_grad=True)
    with one_thread():
        assert torch.autograd.gradcheck(tp, (x, y, w))
        assert torch.autograd.gradgradcheck(tp, (x, y, w), fast_mode=True)


def test_forces_through_double_backward_match_e3nn():
    """Energy -> forces (create_graph) -> loss -> parameter gradients, as in potential training."""
    ref, ours = nequip_uvu(e3), nequip_uvu(None)
    pos = torch.randn(6, 3, dtype=torch.float32, requires_grad=True)
    feats = torch.randn(6, ref.irreps_in1.dim)
    w = torch.randn(6, ref.weight_numel, requires_grad=True)
    results = []
    for tp in (ref, ours):
        sh = e3.spherical_harmonics("0e + 1o + 2e", pos, normalize=True)
        energy = tp(feats, sh, w).pow(2).sum()
        forces = -torch.autograd.grad(energy, pos, create_graph=True)[0]
        results.append(torch.autograd.grad(forces.pow(2).sum(), (w, pos)))
    for p, q in zip(results[1], results[0]):
        assert rel_err(p, q) <= 1e-4


@pytest.mark.slow
def test_torch_compile():
    tp = nequip_uvu(None)
    x = torch.randn(10, tp.irreps_in1.dim)
    y = torch.randn(10, tp.irreps_in2.dim)
    w = torch.randn(10, tp.weight_numel, requires_grad=True)
    compiled = torch.compile(tp)
    out = compiled(x, y, w)
    assert rel_err(out, tp(x, y, w)) <= 1e-5
    out.sum().backward()
    assert w.grad is not None
