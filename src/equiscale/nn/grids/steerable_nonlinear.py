"""Nonlinearities for steerable feature maps: :class:`NormNonlinearity`, :class:`GatedNonlinearity`,
:class:`PointwiseNonlinearity`.

Features are plain tensors ``(B, field_type.size, *grid)`` (``grid`` is ``(H, W)`` in 2D,
``(D, H, W)`` in 3D; any number of grid axes, none included, is accepted). Field ``i`` occupies the
channels ``field_type.slices[i]`` and transforms by ``field_type.representations[i]``; a group
element ``g`` acts as ``(g.F)(p) = rho(g) F(g^-1 p)``. Every layer here acts on each grid point on
its own, so it commutes with the motion of the grid, and on each field's values by a map that
commutes with ``rho(g)``: the layers are equivariant for every element of the group, not only for
those that map the grid onto itself.

An elementwise function such as ReLU commutes only with permutation matrices, so it is allowed
only on fields of permutation type (regular, trivial, quotient representations of a finite
group): :class:`PointwiseNonlinearity`. Other fields (vectors, irreps of SO(2)/SO(3)) need a
function of the norm (:class:`NormNonlinearity`) or a gate, a learned invariant scalar that scales
the whole field (:class:`GatedNonlinearity`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from equiscale.nn._buffers import set_optional_buffer
from equiscale.nn.grids.field_type import FieldType, as_field_type, invariant_vectors

__all__ = ["NormNonlinearity", "GatedNonlinearity", "PointwiseNonlinearity"]

_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "tanh": torch.tanh,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
}


def _resolve_function(function: str | Callable[[Tensor], Tensor], where: str,
                      allowed: Sequence[str] | None = None) -> tuple[Callable[[Tensor], Tensor], str]:
    """The callable and a printable name for ``function`` (a name from ``_FUNCTIONS`` or a callable)."""
    names = tuple(_FUNCTIONS) if allowed is None else tuple(allowed)
    if isinstance(function, str):
        if function not in names:
            raise ValueError(f"{where}: unknown function {function!r}; use one of {names} or a callable")
        return _FUNCTIONS[function], function
    if not callable(function):
        raise ValueError(f"{where}: function must be one of {names} or a callable, got {function!r}")
    return function, getattr(function, "__name__", type(function).__name__)


def _check_features(x: Tensor, field_type: FieldType, where: str) -> None:
    """ValueError unless ``x`` is a floating-point ``(B, field_type.size, *grid)`` tensor."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{where}: input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{where}: input must be (batch, {field_type.size} channels, *grid), got shape "
                         f"{tuple(x.shape)}")
    if x.shape[1] != field_type.size:
        raise ValueError(f"{where}: input has {x.shape[1]} channels (shape {tuple(x.shape)}), but the field type "
                         f"{field_type!r} has {field_type.size}")
    if not x.is_floating_point():
        raise ValueError(f"{where}: input must be floating point, got {x.dtype}")


class _InvariantBases:
    """:func:`invariant_vectors` of each representation, computed once per object (and per irrep id).

    The columns are canonical up to rotations inside the subspace (see :func:`invariant_vectors`:
    the constant vector of a regular representation is positive).
    """

    def __init__(self) -> None:
        self._seen: list[tuple[Any, Tensor]] = []
        self._irreps: dict[Any, Tensor] = {}

    def __call__(self, rep: Any) -> Tensor:
        for seen, basis in self._seen:
            if seen is rep:
                return basis
        key = None if rep.irrep_id is None else (rep.group, rep.irrep_id)
        if key is not None and key in self._irreps:
            basis = self._irreps[key]
        else:
            basis = invariant_vectors(rep)  # columns with a fixed sign (first non-zero entry positive)
            if key is not None:
                self._irreps[key] = basis
        self._seen.append((rep, basis))
        return basis


def _trivial_scalar(rep: Any, bases: _InvariantBases) -> bool:
    """True if ``rep`` is 1-d and fixed by the group (an invariant scalar)."""
    return rep.dim == 1 and bases(rep).shape[1] == 1


class _FieldGroups:
    """Fields sorted into groups by a label, each group a contiguous channel block after a permutation.

    ``groups[j]`` lists the field indices with the ``j``-th label (labels in order of first
    appearance, fields in their order); ``permutation`` lists the channels group after group (None
    when that is already the input order) and ``inverse`` undoes it.
    """

    def __init__(self, field_type: FieldType, labels: Sequence[Any]) -> None:
        order: dict[Any, list[int]] = {}
        for i, label in enumerate(labels):
            order.setdefault(label, []).append(i)
        self.groups = list(order.values())
        self.dims = [field_type.representations[g[0]].dim for g in self.groups]
        channels = torch.cat([torch.arange(field_type.slices[i].start, field_type.slices[i].stop)
                              for g in self.groups for i in g])
        identity = torch.equal(channels, torch.arange(field_type.size))
        self.permutation = None if identity else channels
        self.inverse = None if identity else torch.argsort(channels)
        self.sizes = [len(g) * d for g, d in zip(self.groups, self.dims)]

    def register(self, module: nn.Module) -> None:
        """Keep the channel permutations as non-persistent buffers (they follow ``module.to``).

        No permutation is a plain ``None`` attribute (:func:`set_optional_buffer`).
        """
        set_optional_buffer(module, "_permutation", self.permutation)
        set_optional_buffer(module, "_inverse", self.inverse)
        for j, g in enumerate(self.groups):
            module.register_buffer(f"_fields_{j}", torch.tensor(g, dtype=torch.long), persistent=False)


def _split_groups(module: nn.Module, layout: _FieldGroups, x: Tensor) -> list[Tensor]:
    """The blocks ``(B, k, d, *grid)`` of each group of ``layout`` (``k`` fields of dimension ``d``)."""
    if module._permutation is not None:
        x = x.index_select(1, module._permutation)
    blocks = x.split(layout.sizes, dim=1)
    return [b.unflatten(1, (len(g), d)) for b, g, d in zip(blocks, layout.groups, layout.dims)]


def _merge_groups(module: nn.Module, blocks: list[Tensor]) -> Tensor:
    """Inverse of :func:`_split_groups`: ``(B, size, *grid)`` in the field type's channel order."""
    flat = [b.flatten(1, 2) for b in blocks]
    y = flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)
    return y if module._inverse is None else y.index_select(1, module._inverse)


class NormNonlinearity(nn.Module):
    r"""Norm nonlinearity: each field :math:`x` becomes :math:`x\,\phi(|x| + b) / |x|`.

    :math:`|x|` is the Euclidean norm over the field's channels at each grid point, :math:`b` one
    learned bias per field. Orthogonal ``rho(g)`` keeps the norm, so
    ``rho(g) x -> rho(g) f(x)``: the layer is equivariant for any representation, and a rotation
    acts on the output as on the input. Trivial scalar fields are treated like the others (their
    output is :math:`\mathrm{sign}(x)\,\phi(|x| + b)`, an odd function); to apply :math:`\phi`
    to scalars directly use :class:`PointwiseNonlinearity` or :class:`GatedNonlinearity` on them.

    Norms below ``eps`` are raised to ``eps`` before dividing, so a zero field gives a finite output
    and finite gradients (the gradient of the norm is zero there).

    Args:
        field_type: the type of the input and of the output.
        function: ``"relu"``, ``"sigmoid"``, ``"softplus"`` (or another name of ``torch`` activation:
            ``"tanh"``, ``"elu"``, ``"gelu"``, ``"silu"``), or a callable applied to the biased norms.
        bias: learn the bias :math:`b`. Without it, ``"relu"`` would give the identity, which raises
            ValueError.
        bias_init: the initial value of every bias. The default ``-0.1`` makes ``"relu"`` shrink
            each norm a little (the identity at ``b = 0``).
        eps: the smallest norm divided by.

    Shapes: ``(B, field_type.size, *grid)`` -> same shape. Consecutive or not, fields of equal
    dimension are processed together (one gather, then a few tensor ops per dimension).
    """

    def __init__(self, field_type: FieldType, function: str | Callable[[Tensor], Tensor] = "relu",
                 bias: bool = True, *, bias_init: float = -0.1, eps: float = 1e-8) -> None:
        super().__init__()
        name = type(self).__name__
        self.field_type = self.in_type = self.out_type = as_field_type(field_type, f"{name}: field_type")
        self.function, self._function_name = _resolve_function(function, name)
        if not bias and function == "relu":
            raise ValueError(f"{name}: relu(|x|) / |x| * x = x, so function='relu' without a bias is the identity; "
                             f"use bias=True or another function")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps!r}")
        self.eps = float(eps)
        self.bias_init = float(bias_init)
        self.bias = nn.Parameter(torch.full((len(field_type),), self.bias_init)) if bias else None
        self._layout = _FieldGroups(field_type, [rep.dim for rep in field_type.representations])
        self._layout.register(self)

    def reset_parameters(self) -> None:
        """Set every bias to ``bias_init``."""
        if self.bias is not None:
            with torch.no_grad():
                self.bias.fill_(self.bias_init)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, field_type.size, *grid)`` -> same shape."""
        _check_features(x, self.field_type, type(self).__name__)
        grid = (1,) * (x.dim() - 2)
        out = []
        for j, block in enumerate(_split_groups(self, self._layout, x)):  # (B, k, d, *grid)
            norms = block.pow(2).sum(2).clamp_min(self.eps * self.eps).sqrt()  # (B, k, *grid)
            argument = norms
            if self.bias is not None:
                fields = getattr(self, f"_fields_{j}")
                argument = norms + self.bias.index_select(0, fields).to(x.dtype).view(-1, *grid)
            out.append(block * (self.function(argument) / norms).unsqueeze(2))
        return _merge_groups(self, out)

    def extra_repr(self) -> str:
        return f"{self.field_type!r}, function={self._function_name}, bias={self.bias is not None}, eps={self.eps:g}"


class GatedNonlinearity(nn.Module):
    r"""Gated nonlinearity: each gated field :math:`x_i` becomes :math:`x_i\,\sigma(s_i)` with
    :math:`s_i` its gate, an invariant scalar field.

    The input type is the gated fields followed by their gates: the **last** ``num_gated`` fields
    of ``in_type`` are the gates (each a 1-d representation fixed by the group, i.e. a trivial
    scalar), the first ``num_gated`` fields are gated, one-to-one in order (gate ``i`` scales field
    ``i``), so ``len(in_type) == 2 * num_gated``. ``out_type`` is the type of the gated fields. A
    rotation acts on the output as ``out_type`` says: the gates do not change, the gated fields
    rotate with their representation.

    Args:
        in_type: gated fields + gate fields.
        num_gated: how many fields are gated (and how many gates follow them).
        function: the gate activation, ``"sigmoid"`` (default) or another name or callable.

    Shapes: ``(B, in_type.size, *grid)`` -> ``(B, out_type.size, *grid)``.
    """

    def __init__(self, in_type: FieldType, num_gated: int, function: str | Callable[[Tensor], Tensor] = "sigmoid"
                 ) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_type = as_field_type(in_type, f"{name}: in_type")
        if isinstance(num_gated, bool) or not isinstance(num_gated, int) or num_gated < 1:
            raise ValueError(f"{name}: num_gated must be a positive int, got {num_gated!r}")
        if len(in_type) != 2 * num_gated:
            raise ValueError(f"{name}: in_type has {len(in_type)} fields; with num_gated={num_gated} it needs "
                             f"{num_gated} gated fields followed by {num_gated} gates ({2 * num_gated} fields)")
        bases = _InvariantBases()
        for i in range(num_gated, 2 * num_gated):
            rep = in_type.representations[i]
            if not _trivial_scalar(rep, bases):
                raise ValueError(f"{name}: gate field {i} ({rep.name}, dim {rep.dim}) is not a trivial scalar "
                                 f"(a 1-d representation fixed by {in_type.group.name}); gates must be invariant")
        self.num_gated = num_gated
        self.out_type = FieldType(in_type.group, in_type.representations[:num_gated])
        self.function, self._function_name = _resolve_function(function, name)
        owner = [i for i, rep in enumerate(self.out_type.representations) for _ in range(rep.dim)]
        self.register_buffer("_owner", torch.tensor(owner, dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_type.size, *grid)`` -> ``(B, out_type.size, *grid)``."""
        _check_features(x, self.in_type, type(self).__name__)
        gated = x.narrow(1, 0, self.out_type.size)
        gates = self.function(x.narrow(1, self.out_type.size, self.num_gated))
        if self.out_type.size != self.num_gated:  # some gated field has dim > 1: one gate value per channel
            gates = gates.index_select(1, self._owner)
        return gated * gates

    def extra_repr(self) -> str:
        return f"{self.in_type!r} -> {self.out_type!r}, num_gated={self.num_gated}, function={self._function_name}"


def _is_permutation_representation(rep: Any) -> bool:
    """True if ``rep`` maps every element (all of a finite group, else generic samples) to a permutation matrix."""
    group = rep.group
    if group.is_finite:
        matrices = rep.matrices()
    else:
        from equiscale.kernels._intertwiners import constraint_elements

        matrices = rep(constraint_elements(group))
    rounded = matrices.round()
    return bool((matrices - rounded).abs().max() < 1e-9 and ((rounded == 0) | (rounded == 1)).all()
                and (rounded.sum(-1) == 1).all() and (rounded.sum(-2) == 1).all())


class PointwiseNonlinearity(nn.Module):
    """An elementwise function of every channel, for fields whose representations are permutations.

    An elementwise ``phi`` commutes with ``rho(g)`` exactly when ``rho(g)`` permutes the channels:
    regular, trivial and other permutation representations of finite groups (checked at every
    element), trivial representations of compact groups (checked at generic elements). Any other
    field (a vector, the sign representation, an SO(2)/SO(3) irrep) raises ValueError naming it. A
    rotation acts on the output as on the input.

    Args:
        field_type: the type of the input and of the output.
        function: ``"relu"`` (default), ``"sigmoid"``, ``"softplus"``, ``"tanh"``, ``"elu"``,
            ``"gelu"``, ``"silu"``, or an elementwise callable.

    Shapes: ``(B, field_type.size, *grid)`` -> same shape.
    """

    def __init__(self, field_type: FieldType, function: str | Callable[[Tensor], Tensor] = "relu") -> None:
        super().__init__()
        name = type(self).__name__
        self.field_type = self.in_type = self.out_type = as_field_type(field_type, f"{name}: field_type")
        self.function, self._function_name = _resolve_function(function, name)
        checked: list[Any] = []
        for i, rep in enumerate(field_type.representations):
            if any(rep is seen for seen in checked):
                continue
            if not _is_permutation_representation(rep):
                raise ValueError(f"{name}: field {i} ({rep.name}, dim {rep.dim}) of {field_type.group.name} does not "
                                 f"act by permutation matrices, so an elementwise function is not equivariant on it; "
                                 f"use NormNonlinearity or GatedNonlinearity")
            checked.append(rep)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, field_type.size, *grid)`` -> same shape."""
        _check_features(x, self.field_type, type(self).__name__)
        return self.function(x)

    def extra_repr(self) -> str:
        return f"{self.field_type!r}, function={self._function_name}"
