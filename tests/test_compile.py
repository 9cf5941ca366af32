"""Every public module of ``o3`` and ``nn``, and the application models, under the PyTorch compilers.

For each name in ``equiscale.o3.__all__`` and ``equiscale.nn.__all__`` the table ``CASES`` gives a
small instance with example inputs (or, for a name that is not a module or tensor function, why it
is not compiled). Each case runs

* under ``torch.compile(fullgraph=True)`` with dynamo's ``eager`` backend: no graph break (dynamo
  raises at the first one) and the outputs of the traced graph equal eager's;
* under ``torch.export.export``: ``ExportedProgram.module()`` gives eager's outputs.

Inductor (which compiles C++) runs on two cases in the default suite; the full inductor sweep is
marked slow. A name added to ``__all__`` without an entry here fails ``test_every_public_name_has_an_entry``.
Cases that fail because of a graph break in a file owned elsewhere are marked
``xfail(strict=True)`` with the cause (they flip to an error once fixed: then remove the mark).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple, Union

import pytest
import torch

from equiscale import _kernels
from equiscale import nn as enn
from equiscale import o3

Case = Callable[[], Tuple[torch.nn.Module, tuple]]


class Function(torch.nn.Module):
    """A tensor function as a module (for compile and export)."""

    def __init__(self, function: Callable, **kwargs: Any) -> None:
        super().__init__()
        self.function, self.kwargs = function, kwargs

    def forward(self, *args: torch.Tensor):
        return self.function(*args, **self.kwargs)


class Method(torch.nn.Module):
    """One method of a module as the forward of another (SO3Grid's transforms, ...)."""

    def __init__(self, module: torch.nn.Module, name: str) -> None:
        super().__init__()
        self.module, self.name = module, name

    def forward(self, *args: torch.Tensor):
        return getattr(self.module, self.name)(*args)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_g(seed))


def _tp(cls, *irreps, **kwargs) -> Case:
    def make():
        module = cls(*irreps, **kwargs)
        ins = [module.irreps_in1, module.irreps_in2] if hasattr(module, "irreps_in1") else [module.irreps_in]
        return module, tuple(randn(7, ir.dim, seed=k) for k, ir in enumerate(ins))
    return make


def _grid_case(make_layer: Callable[[], torch.nn.Module], shape: tuple) -> Case:
    def make():
        return make_layer(), (randn(*shape),)
    return make


def _message_passing() -> Tuple[torch.nn.Module, tuple]:
    module = enn.MessagePassing("4x0e+2x1o", "4x0e+2x1o", "0e+1o", num_radial_basis=4, radial_hidden=(8,), cutoff=3.0)
    positions = randn(6, 3) * 1.2
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2, 3], [1, 2, 3, 4, 5, 0, 0, 1, 2]])
    return module, (randn(6, module.irreps_node_in.dim, seed=1), positions, edge_index)


def _fused() -> Tuple[torch.nn.Module, tuple]:
    irreps_mid, instructions = enn.uvu_instructions(o3.Irreps("4x0e+2x1o"), o3.Irreps("0e+1o"), o3.Irreps("4x0e+2x1o"))
    module = enn.GatherTensorProductScatter("4x0e+2x1o", "0e+1o", irreps_mid, instructions)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 1], [1, 2, 3, 4, 5, 0, 0]])

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = module

        def forward(self, x, sh, weight, edges):
            return self.kernel(x, sh, weight, edges, 6)

    return Fixed(), (randn(6, 10), o3.spherical_harmonics("0e+1o", randn(7, 3), True, "component"),
                     randn(7, module.weight_numel, seed=2), edge_index)


def _groups():
    from equiscale.groups import C, SO2

    return C(4), SO2()


def _field_type(kind: str):
    c4, so2 = _groups()
    if kind == "regular":
        return enn.FieldType(c4, [c4.regular_representation()] * 2)
    return enn.FieldType(so2, [so2.irrep(0), so2.irrep(1), so2.irrep(1)])


def _steerable3d():
    from equiscale.groups import SO3

    so3 = SO3()
    return enn.SteerableConv3d(enn.FieldType(so3, [so3.irrep(0)]), enn.FieldType(so3, [so3.irrep(1)]), 3, padding=1)


NOT_A_MODULE = "not a module or tensor function"

# name -> a factory of (module, inputs), or a string: why the name is not compiled
CASES: Dict[str, Union[Case, str]] = {
    # o3: rotations and Wigner matrices
    "check_rotation_matrix": "a check that raises or returns None (data-dependent by design)",
    "rand_matrix": "random constructor (no tensor input)",
    "identity_angles": "constructor (no tensor input)",
    "rand_angles": "random constructor (no tensor input)",
    "identity_quaternion": "constructor (no tensor input)",
    "rand_quaternion": "random constructor (no tensor input)",
    "rand_axis_angle": "random constructor (no tensor input)",
    "compose_angles": lambda: (Function(o3.compose_angles), (randn(5), randn(5, seed=1), randn(5, seed=2),
                                                             randn(5, seed=3), randn(5, seed=4), randn(5, seed=5))),
    "inverse_angles": lambda: (Function(o3.inverse_angles), (randn(5), randn(5, seed=1), randn(5, seed=2))),
    "compose_quaternion": lambda: (Function(o3.compose_quaternion), (randn(5, 4), randn(5, 4, seed=1))),
    "inverse_quaternion": lambda: (Function(o3.inverse_quaternion), (randn(5, 4),)),
    "compose_axis_angle": lambda: (Function(o3.compose_axis_angle), (randn(5, 3), randn(5), randn(5, 3, seed=1),
                                                                     randn(5, seed=2))),
    "matrix_x": lambda: (Function(o3.matrix_x), (randn(5),)),
    "matrix_y": lambda: (Function(o3.matrix_y), (randn(5),)),
    "matrix_z": lambda: (Function(o3.matrix_z), (randn(5),)),
    "angles_to_matrix": lambda: (Function(o3.angles_to_matrix), (randn(5), randn(5, seed=1), randn(5, seed=2))),
    "matrix_to_angles": lambda: (Function(o3.matrix_to_angles), (o3.rand_matrix(5),)),
    "angles_to_quaternion": lambda: (Function(o3.angles_to_quaternion), (randn(5), randn(5, seed=1), randn(5, seed=2))),
    "matrix_to_quaternion": lambda: (Function(o3.matrix_to_quaternion), (o3.rand_matrix(5),)),
    "axis_angle_to_quaternion": lambda: (Function(o3.axis_angle_to_quaternion), (randn(5, 3), randn(5))),
    "quaternion_to_axis_angle": lambda: (Function(o3.quaternion_to_axis_angle), (randn(5, 4),)),
    "matrix_to_axis_angle": lambda: (Function(o3.matrix_to_axis_angle), (o3.rand_matrix(5),)),
    "angles_to_axis_angle": lambda: (Function(o3.angles_to_axis_angle), (randn(5), randn(5, seed=1), randn(5, seed=2))),
    "axis_angle_to_matrix": lambda: (Function(o3.axis_angle_to_matrix), (randn(5, 3), randn(5))),
    "quaternion_to_matrix": lambda: (Function(o3.quaternion_to_matrix), (randn(5, 4),)),
    "quaternion_to_angles": lambda: (Function(o3.quaternion_to_angles), (randn(5, 4),)),
    "axis_angle_to_angles": lambda: (Function(o3.axis_angle_to_angles), (randn(5, 3), randn(5))),
    "angles_to_xyz": lambda: (Function(o3.angles_to_xyz), (randn(5), randn(5, seed=1))),
    "xyz_to_angles": lambda: (Function(o3.xyz_to_angles), (randn(5, 3),)),
    "wigner_D": lambda: (Function(lambda a, b, c: o3.wigner_D(2, a, b, c)), (randn(5), randn(5, seed=1), randn(5, seed=2))),
    "wigner_3j": "constant constructor (degrees in, tensor out; computed once, outside models)",
    "change_basis_real_to_complex": "constant constructor",
    "su2_generators": "constant constructor",
    "so3_generators": "constant constructor",
    "Irrep": NOT_A_MODULE,
    "Irreps": NOT_A_MODULE,
    "Instruction": NOT_A_MODULE,
    "irrep": "a namespace of Irrep constants",
    # o3: modules
    "SphericalHarmonics": lambda: (o3.SphericalHarmonics("0e+1o+2e+3o", True, "component"), (randn(7, 3),)),
    "spherical_harmonics": lambda: (Function(lambda x: o3.spherical_harmonics([0, 1, 2, 5], x, True)), (randn(7, 3),)),
    "TensorProduct": lambda: (o3.TensorProduct("2x0e+2x1o", "0e+1o", "2x0e+2x1o+1e",
                                               [(0, 0, 0, "uvw", True), (1, 1, 0, "uvw", True), (1, 0, 1, "uvu", True),
                                                (1, 1, 2, "uvv", True), (0, 1, 1, "uvu", False)]),
                              (randn(7, 8), randn(7, 4, seed=1))),
    "FullyConnectedTensorProduct": _tp(o3.FullyConnectedTensorProduct, "2x0e+2x1o", "0e+1o", "3x0e+2x1o+1e"),
    "ElementwiseTensorProduct": _tp(o3.ElementwiseTensorProduct, "2x0e+2x1o", "2x0e+2x1o"),
    "FullTensorProduct": _tp(o3.FullTensorProduct, "0e+1o", "1o+2e"),
    "TensorSquare": lambda: (o3.TensorSquare("2x0e+1o"), (randn(7, 5),)),
    "Linear": lambda: (o3.Linear("4x0e+2x1o+2e", "3x0e+4x1o", biases=True), (randn(7, 15),)),
    "Norm": lambda: (o3.Norm("2x0e+2x1o+2e"), (randn(7, 13),)),
    "ReducedTensorProducts": lambda: (o3.ReducedTensorProducts("ij=ji", i="1o"), (randn(7, 3), randn(7, 3, seed=1))),
    "CartesianTensor": lambda: (Method(o3.CartesianTensor("ij=ji"), "from_cartesian"), (randn(7, 3, 3),)),
    "SphericalTensor": lambda: (Method(o3.SphericalTensor(2, 1, -1), "norms"), (randn(7, 9),)),
    "Legendre": lambda: (o3.Legendre([0, 1, 2, 3]), (torch.cos(randn(7)), torch.sin(randn(7)).abs())),
    "SphericalHarmonicsAlphaBeta": lambda: (o3.SphericalHarmonicsAlphaBeta([0, 1, 2]), (randn(7), randn(7, seed=1))),
    "spherical_harmonics_alpha": lambda: (Function(lambda a: o3.spherical_harmonics_alpha(3, a)), (randn(7),)),
    "spherical_harmonics_alpha_beta": lambda: (Function(lambda a, b: o3.spherical_harmonics_alpha_beta([0, 1, 2], a, b)),
                                               (randn(7), randn(7, seed=1))),
    "s2_grid": "constant constructor (resolutions in)",
    "spherical_harmonics_s2_grid": "constant constructor (resolutions in)",
    "rfft": lambda: (Function(lambda x: o3.rfft(x, 2)), (randn(3, 6, 10),)),
    "irfft": lambda: (Function(lambda x: o3.irfft(x, 11)), (randn(3, 6, 5),)),
    "ToS2Grid": lambda: (o3.ToS2Grid(2, (6, 7)), (randn(3, 9),)),
    "FromS2Grid": lambda: (o3.FromS2Grid((6, 7), 2), (randn(3, 6, 7),)),
    "SO3Grid": lambda: (Method(o3.SO3Grid(2, 4), "to_grid"), (randn(3, 35),)),
    # nn.points
    "Activation": lambda: (enn.Activation("2x0e+1x0o+1x1o", [torch.tanh, torch.tanh, None]), (randn(7, 6),)),
    "BesselBasis": lambda: (enn.BesselBasis(6, 3.0), (torch.rand(9, generator=_g()) * 3,)),
    "CosineCutoff": lambda: (enn.CosineCutoff(3.0), (torch.rand(9, generator=_g()) * 4,)),
    "PolynomialCutoff": lambda: (enn.PolynomialCutoff(3.0), (torch.rand(9, generator=_g()) * 4,)),
    "GaussianBasis": lambda: (enn.GaussianBasis(6, 3.0), (torch.rand(9, generator=_g()) * 3,)),
    "GatherTensorProductScatter": _fused,
    "Gate": lambda: (enn.Gate("2x0e", [torch.nn.functional.silu], "2x0e", [torch.sigmoid], "1x1o+1x2e"), (randn(7, 12),)),
    "MessagePassing": _message_passing,
    "NormActivation": lambda: (enn.NormActivation("2x0e+2x1o", torch.sigmoid), (randn(7, 8),)),
    "RadialMLP": lambda: (enn.RadialMLP([6, 16, 5]), (randn(9, 6),)),
    "normalize2mom": lambda: (enn.normalize2mom(torch.tanh), (randn(9),)),
    "moment": "constant constructor (a number from a function)",
    "radius_graph": "data-dependent output size (a neighbour list): built outside the compiled model",
    "edge_pairs": "data-dependent output size (grouping of a neighbour list)",
    "scatter_sum": lambda: (Function(enn.scatter_sum, dim_size=4), (randn(9, 3), torch.tensor([0, 1, 1, 3, 0, 2, 2, 1, 0]))),
    "scatter_mean": lambda: (Function(enn.scatter_mean, dim_size=4), (randn(9, 3), torch.tensor([0, 1, 1, 3, 0, 2, 2, 1, 0]))),
    "uvu_instructions": "irreps arithmetic (no tensors)",
    "soft_one_hot_linspace": lambda: (Function(lambda x: enn.soft_one_hot_linspace(x, 0.0, 3.0, 6, "smooth_finite", True)),
                                      (torch.rand(9, generator=_g()) * 3,)),
    "bessel": lambda: (Function(lambda x: enn.bessel(x, 6, 3.0)), (torch.rand(9, generator=_g()) * 3 + 0.1,)),
    "soft_unit_step": lambda: (Function(enn.soft_unit_step), (randn(9),)),
    "BatchNorm": lambda: (enn.BatchNorm("2x0e+2x1o").eval(), (randn(7, 8),)),
    "Dropout": lambda: (enn.Dropout("2x0e+2x1o", 0.5).eval(), (randn(7, 8),)),
    "Extract": lambda: (enn.Extract("2x0e+1o", ["1o", "2x0e"], [(1,), (0,)]), (randn(7, 5),)),
    "ExtractIr": lambda: (enn.ExtractIr("2x0e+1o+1x0e", "0e"), (randn(7, 6),)),
    "FullyConnectedNet": lambda: (enn.FullyConnectedNet([4, 8, 3], torch.tanh), (randn(7, 4),)),
    "Identity": lambda: (enn.Identity("2x0e+1o", "2x0e+1o"), (randn(7, 5),)),
    "S2Activation": lambda: (enn.S2Activation("0e+1o+2e", torch.tanh, 8), (randn(5, 9),)),
    "SO3Activation": lambda: (enn.SO3Activation(1, 1, torch.tanh, 4), (randn(5, 10),)),
    # nn.grids
    "FieldType": NOT_A_MODULE,
    "GroupAvgPool2d": _grid_case(lambda: enn.GroupAvgPool2d(2), (2, 3, 4, 8, 8)),
    "GroupMaxPool2d": _grid_case(lambda: enn.GroupMaxPool2d(2), (2, 3, 4, 8, 8)),
    "GroupBatchNorm2d": _grid_case(lambda: enn.GroupBatchNorm2d(3).eval(), (2, 3, 4, 8, 8)),
    "GroupNorm2d": _grid_case(lambda: enn.GroupNorm2d(1, 3), (2, 3, 4, 8, 8)),
    "GroupGlobalPool": _grid_case(lambda: enn.GroupGlobalPool("mean", "max"), (2, 3, 4, 8, 8)),
    "GroupPool": _grid_case(lambda: enn.GroupPool("max"), (2, 3, 4, 8, 8)),
    "GroupUpsample": _grid_case(lambda: enn.GroupUpsample(2), (2, 3, 4, 5, 5)),
    "LiftingConv2d": _grid_case(lambda: enn.LiftingConv2d(2, 3, 3, _groups()[0], padding=1), (2, 2, 8, 8)),
    "GroupConv2d": _grid_case(lambda: enn.GroupConv2d(3, 2, 3, _groups()[0], padding=1), (2, 3, 4, 8, 8)),
    "SteerableConv2d": _grid_case(lambda: enn.SteerableConv2d(_field_type("so2"), _field_type("so2"), 5, padding=2),
                                  (2, 5, 9, 9)),
    "SteerableConv3d": _grid_case(_steerable3d, (1, 1, 5, 5, 5)),
    "SteerableSequential": _grid_case(lambda: enn.SteerableSequential(
        enn.SteerableConv2d(_field_type("so2"), _field_type("so2"), 3, padding=1), enn.NormNonlinearity(_field_type("so2"))),
        (2, 5, 9, 9)),
    "NormNonlinearity": _grid_case(lambda: enn.NormNonlinearity(_field_type("so2")), (2, 5, 6, 6)),
    "GatedNonlinearity": _grid_case(lambda: enn.GatedNonlinearity(
        enn.FieldType(_groups()[1], [_groups()[1].irrep(1), _groups()[1].irrep(0)]), 1), (2, 3, 6, 6)),
    "PointwiseNonlinearity": _grid_case(lambda: enn.PointwiseNonlinearity(_field_type("regular")), (2, 8, 6, 6)),
    "SteerableBatchNorm": _grid_case(lambda: enn.SteerableBatchNorm(_field_type("so2")).eval(), (2, 5, 6, 6)),
}

# cases that break the graph in a file owned elsewhere: name -> cause (strict xfail: flips when fixed)
KNOWN_BREAKS: Dict[str, str] = {}
KNOWN_EXPORT_FAILURES: Dict[str, str] = {}


def _public_names():
    return [("o3", n) for n in o3.__all__] + [("nn", n) for n in enn.__all__]


def _compiled_names():
    return sorted({n for _, n in _public_names() if callable(CASES.get(n))})


def test_every_public_name_has_an_entry():
    missing = [f"{where}.{name}" for where, name in _public_names() if name not in CASES]
    assert not missing, "add " + ", ".join(missing) + " to the table CASES of tests/test_compile.py " \
                        "(a factory of (module, inputs), or the reason it is not compiled)"


def _flatten(out) -> list:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _flatten(item)]
    raise AssertionError(f"unexpected output type {type(out).__name__}")


def _assert_same(got, expected) -> None:
    got, expected = _flatten(got), _flatten(expected)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _marks(name: str, known: Dict[str, str]):
    return [pytest.mark.xfail(strict=True, reason=known[name])] if name in known else []


def _params(known: Dict[str, str]):
    return [pytest.param(n, marks=_marks(n, known), id=n) for n in _compiled_names()]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", _params(KNOWN_BREAKS))
def test_fullgraph_without_graph_break(name):
    module, inputs = CASES[name]()
    expected = module(*inputs)
    compiled = torch.compile(module, fullgraph=True, backend="eager", dynamic=False)
    _assert_same(compiled(*inputs), expected)


@pytest.mark.parametrize("name", _params(KNOWN_EXPORT_FAILURES))
def test_export(name):
    module, inputs = CASES[name]()
    expected = module(*inputs)
    program = torch.export.export(module, inputs)
    _assert_same(program.module()(*inputs), expected)


INDUCTOR_DEFAULT = ("Linear", "FullyConnectedTensorProduct")


@pytest.mark.parametrize("name", [pytest.param(n, id=n, marks=[] if n in INDUCTOR_DEFAULT else [pytest.mark.slow])
                                  for n in _compiled_names()])
def test_inductor(name):
    if name in KNOWN_BREAKS:
        pytest.skip(f"graph break: {KNOWN_BREAKS[name]}")
    module, inputs = CASES[name]()
    expected = module(*inputs)
    compiled = torch.compile(module, fullgraph=True, dynamic=False)
    _assert_same(compiled(*inputs), expected)


KERNEL_CASES = {"uvu_scatter": _message_passing, "tensor_product_uvw": CASES["FullyConnectedTensorProduct"],
                "spherical_harmonics": CASES["SphericalHarmonics"]}


@pytest.mark.parametrize("op", sorted(KERNEL_CASES))
def test_export_goes_through_the_kernels_custom_ops_with_a_dynamic_size(op):
    """torch.export runs the compiled kernels' fake implementations (dynamic first axis) when they are
    loaded; inside ``pytorch_path()`` (what deployed files use) the graph holds no custom operator."""
    from torch.export import Dim

    from equiscale import _kernels

    if not _kernels.available():
        pytest.skip("compiled kernels unavailable")
    module, inputs = KERNEL_CASES[op]()
    if op == "uvu_scatter":  # nodes and edges both dynamic
        nodes = Dim("nodes", min=2)  # edges < 256: MessagePassing groups bond pairs from 256 edges (a size branch)
        dynamic = ({0: nodes}, {0: nodes}, {1: Dim("edges", min=2, max=255)})
    else:
        rows = Dim("rows", min=2)
        dynamic = tuple({0: rows} for _ in inputs)
    program = torch.export.export(module, inputs, dynamic_shapes=dynamic)
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert f"equiscale.{op}.default" in targets, sorted(targets)
    _assert_same(program.module()(*inputs), module(*inputs))
    with _kernels.pytorch_path():
        plain = torch.export.export(module, inputs, dynamic_shapes=dynamic)
    assert not any("equiscale" in str(node.target) for node in plain.graph.nodes)
    _assert_same(plain.module()(*inputs), module(*inputs))
    if op == "uvu_scatter":  # another graph: 8 nodes, 12 edges
        x = randn(8, inputs[0].shape[1], seed=5)
        edges = torch.stack([torch.arange(12) % 8, (torch.arange(12) * 3 + 1) % 8])
        bigger = (x, randn(8, 3, seed=6) * 1.2, edges)
    else:
        bigger = tuple(torch.cat([t, t.flip(0)]) for t in inputs)
    _assert_same(program.module()(*bigger), module(*bigger))


# ----------------------------------------------------------------------------- application models
def _potential():
    from equiscale.atomistic.model import EquivariantPotential

    torch.manual_seed(0)
    model = EquivariantPotential([1, 8], lmax=1, channels=4, layers=2, cutoff=3.0, num_radial_basis=4, radial_hidden=8,
                                 readout_hidden=4, reference_energies={1: -0.5, 8: -2.0}).eval()
    positions = randn(5, 3) * 0.8
    edge_index = torch.tensor([(j, i) for i in range(5) for j in range(5) if i != j]).T.contiguous()
    batch = {"positions": positions, "numbers": torch.tensor([8, 1, 1, 8, 1]), "edge_index": edge_index,
             "shifts": torch.zeros(edge_index.shape[1], 3), "cell": torch.zeros(1, 3, 3),
             "batch": torch.zeros(5, dtype=torch.long), "num_atoms": torch.tensor([5])}
    return model, batch


class _PotentialEnergy(torch.nn.Module):
    """``EquivariantPotential.forward`` without forces (the graph dynamo and export see)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, positions, numbers, edge_index, shifts, cell, batch, num_atoms):
        out = self.model({"positions": positions, "numbers": numbers, "edge_index": edge_index, "shifts": shifts,
                          "cell": cell, "batch": batch, "num_atoms": num_atoms}, forces=False)
        return out["energy"], out["atomic_energies"]


def _potential_energy():
    model, batch = _potential()
    keys = ("positions", "numbers", "edge_index", "shifts", "cell", "batch", "num_atoms")
    return _PotentialEnergy(model), tuple(batch[k] for k in keys)


def _potential_core():
    """What ``compile_inference`` compiles: the per-structure core, forces by autograd around it."""
    model, batch = _potential()
    vectors = model.edge_vectors(batch)
    core = Function(lambda species, v, e, isolated: model._core(species, v, e, None, isolated))
    return core, (model.species(batch["numbers"]), vectors, batch["edge_index"],
                  model.isolated_features(torch.device("cpu")))


def _fluid(name: str) -> Case:
    def make():
        from equiscale.continuum.models import build_model

        torch.manual_seed(0)
        options = {"modes": 3} if "fno" in name else {"kernel_size": 3}
        return build_model(name, width=2, blocks=1, **options).eval(), (randn(2, 16, 16),)
    return make


def _hamiltonian():
    """``HamiltonianModel.core``: the numeric part, with the eager plan (pairs, groups, layout) as inputs."""
    from equiscale.quantum.model import HamiltonianModel

    torch.manual_seed(0)
    model = HamiltonianModel({1: [0, 0, 1], 8: [0, 0, 0, 1, 1, 2]}, lmax=2, channels=4, layers=2, pair_channels=2,
                             radial_hidden=8, cutoff=2.0).eval()
    water = torch.tensor([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
    positions = torch.cat([water, water + torch.tensor([0.2, 0.1, 2.9])])  # two molecules
    batch = {"numbers": torch.tensor([8, 1, 1, 8, 1, 1]), "positions": positions, "batch": torch.tensor([0, 0, 0, 1, 1, 1])}

    def core(positions, plan):
        out = model.core(positions, plan)
        return out["hamiltonian"], out["energy"], out["dipole"], out["polarizability"]
    return Function(core), (positions, model.plan(batch))


def _fluid_models():
    try:
        from equiscale.continuum.models import MODELS
    except ImportError:  # pragma: no cover
        return ()
    return MODELS


APPLICATION_CASES: Dict[str, Case] = {"atomistic:energy": _potential_energy, "atomistic:core": _potential_core,
                                      "quantum:hamiltonian": _hamiltonian,
                                      **{f"continuum:{m}": _fluid(m) for m in _fluid_models()}}
APPLICATION_BREAKS: Dict[str, str] = {}
APPLICATION_EXPORT_FAILURES: Dict[str, str] = {}


def _app_params(known: Dict[str, str]):
    return [pytest.param(n, id=n, marks=_marks(n, known)) for n in APPLICATION_CASES]


@pytest.mark.parametrize("name", _app_params(APPLICATION_BREAKS))
def test_application_model_fullgraph(name):
    module, inputs = APPLICATION_CASES[name]()
    expected = module(*inputs)
    _assert_same(torch.compile(module, fullgraph=True, backend="eager", dynamic=False)(*inputs), expected)


@pytest.mark.parametrize("name", _app_params(APPLICATION_EXPORT_FAILURES))
def test_application_model_export(name):
    module, inputs = APPLICATION_CASES[name]()
    expected = module(*inputs)
    _assert_same(torch.export.export(module, inputs).module()(*inputs), expected)


@pytest.mark.slow
def test_potential_forces_through_the_compiled_core():
    """compile_inference's split: the compiled core (inductor), forces by autograd around it, as eager."""
    model, batch = _potential()
    eager = model(batch, forces=True, stress=False, create_graph=False)
    model.compile_inference()
    try:
        compiled = model(batch, forces=True, stress=False, create_graph=False)
    finally:
        model.compile_inference(False)
    _assert_same((compiled["energy"], compiled["forces"]), (eager["energy"], eager["forces"]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_a_per_edge_uvu_product_compiles_on_the_pytorch_path(dtype):
    """Forward and backward of the fast uvu path (weights per row) trace with fullgraph, gradients equal eager."""
    irreps1, irreps2 = o3.Irreps("4x0e+4x1o"), o3.Irreps("1x0e+1x1o+1x2e")
    outputs, instructions = [], []
    for i1, (mul, ir1) in enumerate(irreps1):
        for i2, (_, ir2) in enumerate(irreps2):
            for ir in ir1 * ir2:
                outputs.append((mul, ir))
                instructions.append((i1, i2, len(outputs) - 1, "uvu", True))
    tp = o3.TensorProduct(irreps1, irreps2, o3.Irreps(outputs), instructions, shared_weights=False,
                          internal_weights=False)
    x = torch.randn(5, irreps1.dim, dtype=dtype, requires_grad=True)
    y = torch.randn(5, irreps2.dim, dtype=dtype)
    w = torch.randn(5, tp.weight_numel, dtype=dtype, requires_grad=True)
    with _kernels.pytorch_path():
        expected = torch.autograd.grad(tp(x, y, w).square().sum(), (x, w))
        compiled = torch.compile(tp, fullgraph=True, backend="aot_eager")
        got = torch.autograd.grad(compiled(x, y, w).square().sum(), (x, w))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
