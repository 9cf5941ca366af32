"""Edge cases of ``o3.Linear`` and the tensor products against e3nn 0.6 (issue 14 §1).

Empty irreps (``Irreps("")``) and zero multiplicities (``"0x1o"``) give outputs of shape
``(..., 0)`` or zeros, weights of size 0 and working gradients, exactly as e3nn's modules do;
invalid arguments that e3nn rejects with ``AssertionError`` raise
:class:`equiscale.errors.InvalidArgumentError`, which ``except AssertionError`` and
``except ValueError`` both catch.
"""
from __future__ import annotations

import pytest
import torch

from equiscale import o3
from equiscale.errors import InvalidArgumentError

e3nn_o3 = pytest.importorskip("e3nn.o3")

# (class name, constructor arguments, keyword arguments)
CASES = [
    ("Linear", ("", "2x0e"), {}),
    ("Linear", ("2x0e", ""), {}),
    ("Linear", ("", ""), {}),
    ("Linear", ("0x1o", "2x1o"), {}),
    ("Linear", ("2x1o", "0x1o"), {}),
    ("Linear", ("0x0e+2x1o", "3x1o+0x0e"), {}),
    ("Linear", ("0x0e+2x1o", "3x1o+0x0e"), {"shared_weights": False}),
    ("FullyConnectedTensorProduct", ("", "1o", "1o"), {}),
    ("FullyConnectedTensorProduct", ("1o", "", "1o"), {}),
    ("FullyConnectedTensorProduct", ("1o", "1o", ""), {}),
    ("FullyConnectedTensorProduct", ("0x1o", "1o", "1o"), {}),
    ("FullyConnectedTensorProduct", ("2x1o", "0x1o", "0e"), {}),
    ("FullyConnectedTensorProduct", ("0x0e+2x1o", "1o", "0x0e+2x1o+1e"), {}),
    ("FullyConnectedTensorProduct", ("0x0e+2x1o", "0e+1o", "0x0e+2x1o+1e"), {"shared_weights": False}),
    ("ElementwiseTensorProduct", ("", ""), {}),
    ("ElementwiseTensorProduct", ("0x1o", "0x1o"), {}),
    ("ElementwiseTensorProduct", ("0x0e+2x1o", "0x0e+2x1o"), {}),
    ("FullTensorProduct", ("", "1o"), {}),
    ("FullTensorProduct", ("1o", ""), {}),
    ("FullTensorProduct", ("0x1o", "1o"), {}),
    ("FullTensorProduct", ("0x0e+2x1o", "1o+0x2e"), {}),
    ("TensorSquare", ("",), {}),
    ("TensorSquare", ("0x1o",), {}),
    ("TensorSquare", ("0x0e+2x1o",), {}),
    ("TensorSquare", ("0x0e+2x1o", "0e+0x1e+2e"), {}),
    ("TensorProduct", ("0x1o+1o", "0x0e+1o", "0x1o+2x0e"),
     {"instructions": [(0, 0, 0, "uvw", True), (1, 1, 1, "uvw", True), (1, 0, 0, "uvw", True)]}),
    ("TensorProduct", ("0x1o+2x1o", "1o", "0x1e+2x0e"),
     {"instructions": [(0, 0, 0, "uvu", True), (1, 0, 1, "uvu", True)], "shared_weights": False}),
]


def _build(lib, name, args, kwargs):
    if name == "TensorProduct":
        kwargs = dict(kwargs)
        instructions = kwargs.pop("instructions")
        return lib.TensorProduct(*args, instructions, **kwargs)
    if name == "TensorSquare" and len(args) == 2:
        return lib.TensorSquare(args[0], irreps_out=args[1], **kwargs)
    return getattr(lib, name)(*args, **kwargs)


def _inputs(module, name, dtype, generator):
    if name == "Linear":
        irreps = [module.irreps_in]
    elif name == "TensorSquare":
        irreps = [module.irreps_in]
    else:
        irreps = [module.irreps_in1, module.irreps_in2]
    return [torch.randn(4, ir.dim, dtype=dtype, generator=generator) for ir in irreps]


def _run(module, name, inputs, weight):
    inputs = [x.clone().requires_grad_(True) for x in inputs]
    args = list(inputs) + ([] if weight is None else [weight])
    out = module(*args)
    if out.requires_grad:
        out.square().sum().backward()
    return out, [x.grad for x in inputs]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name,args,kwargs", CASES, ids=lambda v: repr(v) if isinstance(v, (str, tuple)) else "")
def test_empty_and_zero_multiplicity_match_e3nn(name, args, kwargs, dtype):
    generator = torch.Generator().manual_seed(0)
    ours = _build(o3, name, args, kwargs).to(dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        ref = _build(e3nn_o3, name, args, kwargs).to(dtype)
    finally:
        torch.set_default_dtype(previous)
    assert str(ours.irreps_out) == str(ref.irreps_out)
    assert ours.weight_numel == ref.weight_numel
    assert tuple(ours.weight.shape) == tuple(ref.weight.shape)
    assert torch.equal(ours.output_mask, ref.output_mask.to(ours.output_mask.dtype))
    if ref.weight.numel():
        with torch.no_grad():
            ours.weight.copy_(ref.weight)
    if name == "Linear" and ref.bias.numel():
        with torch.no_grad():
            ref.bias.normal_(generator=generator)
            ours.bias.copy_(ref.bias)
    inputs = _inputs(ours, name, dtype, generator)
    weight = None
    if not ours.shared_weights:
        weight = torch.randn(4, ours.weight_numel, dtype=dtype, generator=generator)
    out, grads = _run(ours, name, inputs, weight)
    out_ref, grads_ref = _run(ref, name, inputs, weight)
    assert out.shape == out_ref.shape and out.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, out_ref, atol=tol, rtol=tol)
    for g, g_ref, x in zip(grads, grads_ref, inputs):
        if g_ref is None:  # e3nn's output does not depend on this input: ours may give zeros
            assert g is None or not g.any()
        else:
            assert g is not None and g.shape == x.shape
            torch.testing.assert_close(g, g_ref, atol=tol, rtol=tol)


def test_zero_sized_weights_have_gradients():
    """A product with a live path and an empty one: the live weights get gradients, shape (0,) weights stay (0,)."""
    tp = o3.FullyConnectedTensorProduct("0x0e+2x1o", "1o", "0x0e+1e")
    assert tp.weight.shape == (2,)
    tp(torch.randn(3, 6), torch.randn(3, 3)).sum().backward()
    assert tp.weight.grad is not None and tp.weight.grad.shape == (2,) and tp.weight.grad.abs().sum() > 0
    lin = o3.Linear("0x1o", "2x1o")
    assert lin.weight.shape == (0,)
    out = lin(torch.randn(5, 0))
    assert out.shape == (5, 6) and not out.any()
    # an output fed by its bias alone (e3nn 0.6's Linear fails on this one with a batch dimension)
    lin = o3.Linear("0x0e+2x1o", "3x0e+1o", biases=True)
    with torch.no_grad():
        lin.bias.fill_(0.5)
    out = lin(torch.randn(5, 6))
    assert out.shape == (5, 6) and torch.equal(out[:, :3], torch.full((5, 3), 0.5))


# invalid arguments e3nn rejects with AssertionError: ours raises InvalidArgumentError
INVALID = {
    "selection rule": lambda o: o.TensorProduct("1o", "1o", "1o", [(0, 0, 0, "uvw", True)]),
    "mode multiplicities": lambda o: o.TensorProduct("2x1o", "1o", "3x1e", [(0, 0, 0, "uvu", True)]),
    "weight shape": lambda o: o.TensorProduct("1o", "1o", "1e", [(0, 0, 0, "uvw", True)])(
        torch.randn(2, 3), torch.randn(2, 3), torch.randn(5)),
    "x last dimension": lambda o: o.FullyConnectedTensorProduct("1o", "1o", "1e")(torch.randn(2, 4),
                                                                                  torch.randn(2, 3)),
    "y last dimension": lambda o: o.FullyConnectedTensorProduct("1o", "1o", "1e")(torch.randn(2, 3),
                                                                                  torch.randn(2, 4)),
    "elementwise irreps count": lambda o: o.ElementwiseTensorProduct("2x1o", "3x1o"),
    "wigner_3j triangle": lambda o: o.wigner_3j(1, 1, 3),
    "D_from_matrix not a rotation": lambda o: o.Irreps("1o").D_from_matrix(torch.full((3, 3), 2.0)),
    "matrix_to_angles shape": lambda o: o.matrix_to_angles(torch.randn(2, 2)),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_arguments_raise_what_e3nn_code_catches(case):
    with pytest.raises(AssertionError):
        INVALID[case](e3nn_o3)
    with pytest.raises(InvalidArgumentError) as info:
        INVALID[case](o3)
    assert isinstance(info.value, AssertionError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert message and "\n" not in message


# e3nn raises ValueError here (module constructors given bad irreps, Linear's instruction check)
CONSTRUCTOR_ERRORS = {
    "Linear irreps string": lambda o: o.Linear("1x", "1o"),
    "Linear instruction irreps": lambda o: o.Linear("1o", "1e", instructions=[(0, 0)]),
    "FullyConnectedTensorProduct irreps": lambda o: o.FullyConnectedTensorProduct("1o", "1q", "1o"),
    "Irrep degree": lambda o: o.Irrep(-1, 1),
    "SphericalHarmonics parity": lambda o: o.SphericalHarmonics("1o+2o", True),
}


@pytest.mark.parametrize("case", sorted(CONSTRUCTOR_ERRORS))
def test_bad_constructor_arguments_raise_invalid_argument_error(case):
    with pytest.raises(ValueError):
        CONSTRUCTOR_ERRORS[case](e3nn_o3)
    with pytest.raises(InvalidArgumentError, match=r"\S"):
        CONSTRUCTOR_ERRORS[case](o3)


def test_wrong_input_dimension_of_linear_names_the_irreps():
    with pytest.raises(InvalidArgumentError, match=r"features: expected shape \(\.\.\., 3\) for irreps 1x1o"):
        o3.Linear("1o", "1o")(torch.randn(2, 4))
