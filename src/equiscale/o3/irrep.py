"""Named irreps, ``irrep.l1o == Irrep("1o")``: the lookup module of ``e3nn.o3.irrep``.

Any attribute ``l<l><p>`` (``l0e``, ``l1o``, ``l12e``, ...) is the irrep it spells, built on
access; ``from equiscale.o3.irrep import l1o, l2e`` works as in e3nn. Other names raise
``AttributeError``.
"""
from __future__ import annotations

from equiscale.o3._irreps import Irrep


def __getattr__(name: str) -> Irrep:
    """The irrep named ``l`` + its text, e.g. ``l2o`` -> ``Irrep("2o")``.

    Args:
        name: attribute name, ``"l"`` followed by an irrep such as ``"1o"``.

    Returns:
        The irrep.

    Raises:
        AttributeError: the name does not spell an irrep.
    """
    if len(name) < 2 or name[0] != "l" or name.startswith("l_") or not name[1:2].isdigit():
        raise AttributeError(f"module 'equiscale.o3.irrep' has no attribute '{name}' "
                             "(named irreps are l<degree><parity>, e.g. l1o)")
    try:
        return Irrep(name[1:])
    except (ValueError, AssertionError, TypeError):
        raise AttributeError(f"module 'equiscale.o3.irrep' has no attribute '{name}' "
                             "(named irreps are l<degree><parity>, e.g. l1o)") from None
