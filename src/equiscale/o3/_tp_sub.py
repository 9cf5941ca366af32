"""Ready-made tensor products of e3nn 0.6: fully connected, elementwise, full and square.

Each builds e3nn's instruction list (same order, so the same weight layout and output irreps)
and hands it to ``TensorProduct``.
"""
from __future__ import annotations

from math import prod
from typing import Iterable, List, Optional

from equiscale.o3._irreps import Irrep, Irreps
from equiscale.o3._tensor_product import TensorProduct
from equiscale.errors import InvalidArgumentError

__all__ = ["FullyConnectedTensorProduct", "ElementwiseTensorProduct", "FullTensorProduct",
           "TensorSquare"]


def _filter(filter_ir_out) -> Optional[List[Irrep]]:
    if filter_ir_out is None:
        return None
    try:
        return [Irrep(ir) for ir in filter_ir_out]
    except (ValueError, TypeError):
        raise InvalidArgumentError(f"filter_ir_out: expected an iterable of irreps, got {filter_ir_out!r}") \
            from None


class FullyConnectedTensorProduct(TensorProduct):
    r"""Every allowed path ``in1[i] (x) in2[j] -> out[k]`` with ``uvw`` weights (e3nn's).

    ``z_w = sum_{u, v} w_{uvw} x_u (x) y_v`` summed over paths; forward as ``TensorProduct``.
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out, irrep_normalization: str = None,
                 path_normalization: str = None, **kwargs) -> None:
        irreps_in1, irreps_in2 = Irreps(irreps_in1), Irreps(irreps_in2)
        irreps_out = Irreps(irreps_out)
        instr = [(i1, i2, io, "uvw", True, 1.0)
                 for i1, (_, ir1) in enumerate(irreps_in1)
                 for i2, (_, ir2) in enumerate(irreps_in2)
                 for io, (_, ir_out) in enumerate(irreps_out)
                 if ir_out in ir1 * ir2]
        super().__init__(irreps_in1, irreps_in2, irreps_out, instr,
                         irrep_normalization=irrep_normalization,
                         path_normalization=path_normalization, **kwargs)


class ElementwiseTensorProduct(TensorProduct):
    r"""``z_u = x_u (x) y_u`` channel by channel, no weights (e3nn's ``uuu`` product).

    Inputs are simplified and split so that their multiplicities line up; ``filter_ir_out``
    keeps only the listed output irreps.
    """

    def __init__(self, irreps_in1, irreps_in2, filter_ir_out: Optional[Iterable] = None,
                 irrep_normalization: str = None, **kwargs) -> None:
        in1 = list(Irreps(irreps_in1).simplify())
        in2 = list(Irreps(irreps_in2).simplify())
        keep = _filter(filter_ir_out)
        if sum(m for m, _ in in1) != sum(m for m, _ in in2):
            raise InvalidArgumentError(f"irreps_in2: {Irreps(irreps_in2)} must have as many irreps "
                                       f"(sum of multiplicities) as irreps_in1 {Irreps(irreps_in1)}")
        i = 0
        while i < len(in1):  # split the larger block so both sides align
            (m1, ir1), (m2, ir2) = in1[i], in2[i]
            if m1 < m2:
                in2[i] = (m1, ir2)
                in2.insert(i + 1, (m2 - m1, ir2))
            elif m2 < m1:
                in1[i] = (m2, ir1)
                in1.insert(i + 1, (m1 - m2, ir1))
            i += 1
        out, instr = [], []
        for i, ((mul, ir1), (_, ir2)) in enumerate(zip(in1, in2)):
            for ir in ir1 * ir2:
                if keep is not None and ir not in keep:
                    continue
                instr.append((i, i, len(out), "uuu", False))
                out.append((mul, ir))
        super().__init__(in1, in2, out, instr, irrep_normalization=irrep_normalization, **kwargs)


class FullTensorProduct(TensorProduct):
    r"""``z_{uv} = x_u (x) y_v`` for every pair of irreps, no weights (e3nn's ``uvuv``).

    The output irreps are sorted; ``filter_ir_out`` keeps only the listed ones.
    """

    def __init__(self, irreps_in1, irreps_in2, filter_ir_out: Optional[Iterable] = None,
                 irrep_normalization: str = None, **kwargs) -> None:
        in1, in2 = Irreps(irreps_in1).simplify(), Irreps(irreps_in2).simplify()
        keep = _filter(filter_ir_out)
        out, instr = [], []
        for i1, (m1, ir1) in enumerate(in1):
            for i2, (m2, ir2) in enumerate(in2):
                for ir in ir1 * ir2:
                    if keep is not None and ir not in keep:
                        continue
                    instr.append((i1, i2, len(out), "uvuv", False))
                    out.append((m1 * m2, ir))
        out, p, _ = Irreps(out).sort()
        instr = [(i1, i2, p[io], mode, w) for i1, i2, io, mode, w in instr]
        super().__init__(in1, in2, out, instr, irrep_normalization=irrep_normalization, **kwargs)


def _square_alpha(norm: str, ir1, ir2, ir_out, diagonal: bool) -> float:
    """e3nn's extra path weight for the square products (``diagonal``: the ``uuu``/``uuw`` part)."""
    if not diagonal:
        return {"component": ir_out.dim, "norm": ir1.dim * ir2.dim, "none": 1}[norm]
    if norm == "component":
        return ir_out.dim / (ir1.dim + 2) if ir_out.l == 0 else ir_out.dim / 2
    if norm == "norm":
        return ir_out.dim * ir1.dim if ir_out.l == 0 else ir1.dim * (ir1.dim + 2) / 2
    return 1


class TensorSquare(TensorProduct):
    r"""``x (x) x`` reduced to irreps without double counting (e3nn's ``TensorSquare``).

    Without ``irreps_out``: no weights, output like ``FullTensorProduct`` of ``x`` with itself
    (``uvu<v`` pairs, the symmetric ``uuu`` part). With ``irreps_out``: fully connected weights.
    """

    def __init__(self, irreps_in, irreps_out=None, filter_ir_out: Optional[Iterable] = None,
                 irrep_normalization: str = None, **kwargs) -> None:
        norm = irrep_normalization or "component"
        if norm not in ("component", "norm", "none"):
            raise InvalidArgumentError(f"irrep_normalization: expected 'component', 'norm' or 'none', got "
                                       f"{norm!r}")
        irreps_in = Irreps(irreps_in).simplify()
        keep = _filter(filter_ir_out)
        if irreps_out is not None and keep is not None:
            raise InvalidArgumentError("irreps_out and filter_ir_out: give at most one of them")
        instr = []
        if irreps_out is None:
            out = []
            for i1, (m1, ir1) in enumerate(irreps_in):
                for i2, (m2, ir2) in enumerate(irreps_in):
                    for ir in ir1 * ir2:
                        if keep is not None and ir not in keep:
                            continue
                        if i1 < i2:
                            instr.append((i1, i2, len(out), "uvuv", False,
                                          _square_alpha(norm, ir1, ir2, ir, False)))
                            out.append((m1 * m2, ir))
                        elif i1 == i2:
                            if m1 > 1:
                                instr.append((i1, i1, len(out), "uvu<v", False,
                                              _square_alpha(norm, ir1, ir2, ir, False)))
                                out.append((m1 * (m1 - 1) // 2, ir))
                            if ir.l % 2 == 0:
                                instr.append((i1, i1, len(out), "uuu", False,
                                              _square_alpha(norm, ir1, ir2, ir, True)))
                                out.append((m1, ir))
            irreps_out, p, _ = Irreps(out).sort()
            instr = [(a, b, p[io], mode, w, alpha) for a, b, io, mode, w, alpha in instr]
        else:
            irreps_out = Irreps(irreps_out).simplify()
            for i1, (m1, ir1) in enumerate(irreps_in):
                for i2, (_, ir2) in enumerate(irreps_in):
                    for io, (_, ir) in enumerate(irreps_out):
                        if ir not in ir1 * ir2:
                            continue
                        if i1 < i2:
                            instr.append((i1, i2, io, "uvw", True,
                                          _square_alpha(norm, ir1, ir2, ir, False)))
                        elif i1 == i2:
                            if m1 > 1:
                                instr.append((i1, i1, io, "u<vw", True,
                                              _square_alpha(norm, ir1, ir2, ir, False)))
                            if ir.l % 2 == 0:
                                instr.append((i1, i1, io, "uuw", True,
                                              _square_alpha(norm, ir1, ir2, ir, True)))
        self.irreps_in = irreps_in
        super().__init__(irreps_in, irreps_in, irreps_out, instr, irrep_normalization="none",
                         **kwargs)

    def __repr__(self) -> str:
        npath = sum(prod(i.path_shape) for i in self.instructions)
        return (f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out.simplify()} | "
                f"{npath} paths | {self.weight_numel} weights)")

    def forward(self, x, weight=None):
        """``x (..., irreps_in.dim)`` -> ``(..., irreps_out.dim)``."""
        return super().forward(x, x, weight)
