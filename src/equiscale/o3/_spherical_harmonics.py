"""Real spherical harmonics: a drop-in for ``e3nn.o3.spherical_harmonics`` (e3nn 0.6), any degree.

Same signature, same basis and the same numbers as e3nn (see :mod:`equiscale.o3._sh_coefficients`
for the convention: polar axis ``y``, ``Y^1(x)`` proportional to ``(x, y, z)``, no Condon-Shortley
phase), plus:

* any degree ``l`` (e3nn stops at 11/12), accurate in float64 at every degree;
* float32 in, float32 out; float64 in, float64-accurate out; torch's default dtype is never used
  or changed;
* ``normalize=True`` maps a zero vector to ``x / 1e-12`` exactly as ``torch.nn.functional.normalize``
  (as e3nn does): finite values (``Y^0`` only) and finite gradients, never NaN;
* on CPU, the compiled kernel (:mod:`equiscale._kernels.spherical_harmonics`, one pass over the
  points writing each row once, compiled backward, double backward through the plain ops; a
  custom operator that ``torch.compile`` traces through);
* elsewhere, or without a compiler (or with ``EQUISCALE_KERNELS=off``), the PyTorch path: one
  eager kernel for every degree (:mod:`equiscale.o3._sh_fast`), a stable recurrence run as one
  fused multiply-add per harmonic on component-major rows, with a hand-written backward; second
  derivatives go through autograd of the plain-op recurrence (:mod:`equiscale.o3._sh_recurrence`),
  which is also what ``torch.compile`` traces and fuses.
"""
from __future__ import annotations

import operator
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch._subclasses.fake_tensor import FakeTensor

from equiscale import _kernels
from equiscale._kernels import spherical_harmonics as _sh_kernel
from equiscale.o3._sh_coefficients import NORMALIZATIONS
from equiscale.o3._sh_fast import spherical_harmonics_kernel
from equiscale.o3._sh_recurrence import spherical_harmonics_plain
from equiscale.errors import InvalidArgumentError

__all__ = ["spherical_harmonics", "SphericalHarmonics"]


def _irreps_class():
    from equiscale.o3._irreps import Irreps  # lazy: _irreps imports heavier machinery

    return Irreps


def _check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise InvalidArgumentError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def _check_degree(l: Any) -> int:
    if isinstance(l, bool):
        raise InvalidArgumentError(f"degrees must be integers, got {l!r}")
    try:
        l = operator.index(l)  # int, numpy integers, ...
    except TypeError:
        raise InvalidArgumentError(f"degrees must be integers, got {l!r}") from None
    if l < 0:
        raise InvalidArgumentError(f"degrees must be >= 0, got {l}")
    return l


def _input_parity(irreps_in: Any) -> int:
    """Parity of the input vector: -1 for ``1x1o`` (vector), +1 for ``1x1e`` (pseudovector)."""
    irreps = _irreps_class()(irreps_in)
    if irreps == _irreps_class()("1x1o"):
        return -1
    if irreps == _irreps_class()("1x1e"):
        return 1
    raise InvalidArgumentError(f"irreps_in for SphericalHarmonics must be a vector (`1x1o`) or a pseudovector (`1x1e`), "
                               f"not `{irreps_in}`")


def parse_degrees(l: Any, irreps_in: Any = None) -> Tuple[List[int], int]:
    """Degrees (e3nn order, repeats allowed) and input parity for ``l`` as e3nn accepts it.

    ``l`` is an int, a sequence of ints, an irreps string or an ``Irreps``. For irreps, e3nn's rule
    applies: the input is a pseudovector (``1e``) if some odd ``l`` is asked with even parity,
    else a vector (``1o``), and every ``l`` must then have parity ``p_in^l``.
    """
    if isinstance(l, str) or _looks_like_irreps(l):
        irreps = _irreps_class()(l) if isinstance(l, str) else l
        entries = [(int(mul), int(ir[0]), int(ir[1])) for mul, ir in irreps]
        if irreps_in is None:
            p_in = 1 if any(deg % 2 == 1 and p == 1 for _, deg, p in entries) else -1
        else:
            p_in = _input_parity(irreps_in)
        ls: List[int] = []
        for mul, deg, p in entries:
            if p != p_in**deg:
                raise InvalidArgumentError(f"irreps_out `{l}` asks for l = {deg} with parity p = {p}, inconsistent with "
                                           f"the input parity {p_in}: the output parity should be p = {p_in ** deg}")
            ls.extend([deg] * mul)
    else:
        p_in = -1 if irreps_in is None else _input_parity(irreps_in)
        if isinstance(l, (list, tuple)):
            ls = [_check_degree(v) for v in l]
        else:
            ls = [_check_degree(l)]
    if not ls:
        raise InvalidArgumentError("no degree asked for: l is empty")
    return ls, p_in


def _looks_like_irreps(l: Any) -> bool:
    """An ``Irreps`` object, ours or e3nn's (duck-typed: a tuple of ``(mul, (l, p))`` pairs)."""
    return type(l).__name__ == "Irreps"


def _is_compiling(x: Optional[torch.Tensor] = None) -> bool:
    """Traced rather than run: by ``torch.compile``/``torch.export``, or on fake tensors (``make_fx``,
    non-strict export), where the eager kernel's data-dependent branch cannot be taken."""
    compiler = getattr(torch, "compiler", None)
    if bool(getattr(compiler, "is_compiling", lambda: False)()):
        return True
    return isinstance(x, FakeTensor)


def _evaluate(ls: Sequence[int], x: torch.Tensor, normalize: bool, normalization: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InvalidArgumentError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != 3:
        raise InvalidArgumentError(f"x must have shape (..., 3), got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError(f"x must be a floating-point tensor, got {x.dtype}")
    batch = x.shape[:-1]
    work = x.reshape(-1, 3)
    low_precision = work.dtype in (torch.float16, torch.bfloat16)
    if low_precision:
        work = work.float()
    if _kernels.use_kernels(work):  # compiled kernel (also what torch.compile traces on CPU)
        out = _sh_kernel.spherical_harmonics(ls, work, normalize, normalization)
    elif _is_compiling(work):  # traced: plain ops, which inductor fuses
        out = spherical_harmonics_plain(ls, work, normalize, normalization)
    else:
        out = spherical_harmonics_kernel(tuple(ls), work, normalize, normalization)
    if low_precision:
        out = out.to(x.dtype)
    return out.reshape(*batch, out.shape[-1])


def spherical_harmonics(l: Union[int, List[int], str, Any], x: torch.Tensor, normalize: bool,
                        normalization: str = "integral") -> torch.Tensor:
    r"""Real spherical harmonics ``Y^l(x)`` (e3nn 0.6 signature, basis and numbers).

    Args:
        l: degrees to compute (int, list of int, irreps string or ``Irreps``), in output order
            (repeats allowed). Irreps follow e3nn's parity rule (see :func:`parse_degrees`).
        x: Cartesian vectors ``(x, y, z)`` of shape ``(..., 3)``; float32 or float64 (float16/bfloat16
            are computed in float32 and cast back).
        normalize: project ``x`` onto the unit sphere first (``x / max(|x|, 1e-12)``). Without it the
            harmonics are the homogeneous polynomials ``|x|^l Y^l(x / |x|)``.
        normalization: ``"integral"``, ``"component"`` or ``"norm"``. "component":
            ``|Y^l(x)|^2 = 2l+1`` on the sphere; "norm": ``|Y^l(x)| = 1``; "integral":
            ``\int_{S^2} Y_lm^2 = 1``.

    Returns:
        A tensor of shape ``(..., sum(2l+1))`` in x's dtype, degree blocks in the order of ``l``,
        orders ``m = -l..l`` inside each block.

    Raises:
        ValueError: unknown normalization, x not of shape ``(..., 3)`` or not floating point, bad
            degrees or irreps.
    """
    _check_normalization(normalization)
    ls, _ = parse_degrees(l)
    return _evaluate(ls, x, bool(normalize), normalization)


class SphericalHarmonics(torch.nn.Module):
    """Module form of :func:`spherical_harmonics` (e3nn's ``o3.SphericalHarmonics``).

    Attributes ``irreps_in`` (``1x1o``, or ``1x1e`` for a pseudovector) and ``irreps_out``
    (simplified ``Irreps``) are as in e3nn. Input ``(..., 3)``, output ``(..., irreps_out.dim)``.
    """

    def __init__(self, irreps_out: Union[int, List[int], str, Any], normalize: bool,
                 normalization: str = "integral", irreps_in: Optional[Any] = None) -> None:
        super().__init__()
        _check_normalization(normalization)
        ls, p_in = parse_degrees(irreps_out, irreps_in)
        irreps = _irreps_class()
        self.normalize = bool(normalize)
        self.normalization = normalization
        self.irreps_in = irreps("1x1e" if p_in == 1 else "1x1o")
        self.irreps_out = irreps([(1, (l, p_in**l)) for l in ls]).simplify()
        self._ls_list = ls
        self._lmax = max(ls)
        self._is_range_lmax = ls == list(range(self._lmax + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _evaluate(self._ls_list, x, self.normalize, self.normalization)

    def extra_repr(self) -> str:
        return f"{self._ls_list}, normalize={self.normalize}, normalization={self.normalization!r}"
