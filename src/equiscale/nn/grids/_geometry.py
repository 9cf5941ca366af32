"""How the planar groups C(n) and D(n) move grids: element angles, exact kernel permutations,
and the checks that a field, stride or padding keeps the grid symmetric about its centre.

Grid convention (as in :mod:`equiscale.testing`): a field ``[..., H, W]`` has x along the columns
and y along the rows, pixel centres at ``index - (size - 1) / 2``; ``(L_g f)(p) = f(g^-1 p)``.
The rotation by +90 degrees is ``torch.rot90(f, 1, dims=(-1, -2))``, the reflection
``s: (x, y) -> (x, -y)`` is ``f.flip(-2)``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from equiscale.groups import CyclicGroup, DihedralGroup

__all__ = [
    "check_planar_group",
    "is_exact_on_grid",
    "needs_square",
    "transform_grid",
    "pixel_permutations",
    "inverse_products",
    "resolve_same_padding",
    "as_pair",
    "check_field",
]


def check_planar_group(group: Any) -> CyclicGroup | DihedralGroup:
    """Return ``group`` if it is ``C(n)`` or ``D(n)``; ValueError otherwise."""
    if not isinstance(group, (CyclicGroup, DihedralGroup)):
        raise ValueError(f"grid group convolutions need a group C(n) or D(n) from equiscale.groups, got {group!r}")
    return group


def is_exact_on_grid(group: CyclicGroup | DihedralGroup) -> bool:
    """True when every element maps the square grid onto itself (n = 1, 2 or 4)."""
    return 4 % group.n == 0


def needs_square(group: CyclicGroup | DihedralGroup) -> bool:
    """True when the group holds a rotation that swaps the axes (anything but C(1), C(2), D(1), D(2))."""
    return group.n not in (1, 2)


def rotation_and_flip(group: CyclicGroup | DihedralGroup, g: int) -> tuple[int, int]:
    """``g = r^k s^f`` -> ``(k, f)`` (``f = 0`` for C(n))."""
    return g % group.n, g // group.n


def transform_grid(x: Tensor, group: CyclicGroup | DihedralGroup, g: int) -> Tensor:
    """``(L_g x)(p) = x(g^-1 p)`` on the last two axes, for elements that map the grid onto itself.

    ``g = r^k s^f``: ``s`` (``flip(-2)``) first, then ``k`` quarter turns scaled to ``2 pi k / n``.
    """
    k, f = rotation_and_flip(group, g)
    quarter_turns = k * 4 / group.n
    if quarter_turns != int(quarter_turns):
        raise ValueError(f"element {g} of {group.name} does not map the grid onto itself")
    if f:
        x = x.flip(-2)
    return torch.rot90(x, int(quarter_turns), dims=(-1, -2))


def pixel_permutations(group: CyclicGroup | DihedralGroup, size: int) -> Tensor:
    """``perm[g, p]``: the flat pixel of a ``size x size`` kernel that ``L_g`` moves to pixel ``p``.

    ``(L_g K).flatten()[p] == K.flatten()[perm[g, p]]``; int64 ``(|G|, size * size)``.
    """
    source = torch.arange(size * size).reshape(size, size)
    return torch.stack([transform_grid(source, group, g).reshape(-1) for g in range(group.order)])


def inverse_products(group: CyclicGroup | DihedralGroup) -> Tensor:
    """``table[g, h] = g^-1 h``, int64 ``(|G|, |G|)``."""
    e = group.elements()
    return group.compose(group.inverse(e)[:, None], e[None, :])


def resolve_same_padding(padding: Any, kernel_size: int, layer: str) -> Any:
    """``"same"`` -> ``(kernel_size - 1) // 2`` for odd kernels (ValueError for even ones); other values unchanged."""
    if padding != "same":
        return padding
    if kernel_size % 2 == 0:
        raise ValueError(f"{layer}: padding='same' with the even kernel_size {kernel_size} pads one side more than "
                         f"the other, which breaks equivariance; use an odd kernel or an int padding")
    return (kernel_size - 1) // 2


def as_pair(value: Any, what: str) -> tuple[int, int]:
    """An int or a pair of ints -> ``(a, b)``; ValueError if negative or malformed."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
        pair = tuple(value)
    else:
        pair = (value, value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{what} must be non-negative ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_field(x: Tensor, group: CyclicGroup | DihedralGroup, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], layer: str) -> None:
    """ValueError unless ``x`` (``[..., H, W]``) and the window keep the output grid centred.

    A window of ``kernel`` moved by ``stride`` over the padded field samples output points that are
    symmetric about the field's centre exactly when ``(size + 2 padding - kernel) % stride == 0``
    along each axis; a group with quarter turns also needs ``H == W``.
    """
    if not x.is_floating_point():
        raise ValueError(f"{layer}: input must be a floating-point tensor, got {x.dtype}")
    h, w = x.shape[-2:]
    if needs_square(group) and h != w:
        raise ValueError(f"{layer}: the field is {h}x{w}, not square: the rotations of {group.name} need H == W")
    for size, k, s, p, axis in zip((h, w), kernel, stride, padding, ("H", "W")):
        if size + 2 * p < k:
            raise ValueError(f"{layer}: the field ({axis}={size}, padding {p}) is smaller than the kernel ({k})")
        if (size + 2 * p - k) % s:
            raise ValueError(
                f"{layer}: stride {s} with kernel {k} and padding {p} on {axis}={size} samples a grid that is not "
                f"centred on the field, which breaks equivariance: {axis} + 2*padding - kernel_size must be "
                f"divisible by the stride"
            )
