"""equiscale.o3.irrep: e3nn's named-irreps module (``irrep.l1o == Irrep("1o")``)."""
import pytest

from equiscale.o3 import Irrep, irrep

pytest.importorskip("e3nn")
from e3nn.o3 import irrep as e3_irrep  # noqa: E402

NAMES = ["l0e", "l0o", "l1o", "l1e", "l2e", "l3o", "l7e", "l12o", "l1y", "l2y",
         "l", "lx", "l1", "l1x", "x1o", "foo", "l-1e", "l_1o", "L1o", "l1oo"]


@pytest.mark.parametrize("name", NAMES)
def test_same_names_as_e3nn(name):
    try:
        ref = getattr(e3_irrep, name)
    except AttributeError:
        with pytest.raises(AttributeError, match=f"'{name}'"):
            getattr(irrep, name)
        return
    ours = getattr(irrep, name)
    assert isinstance(ours, Irrep)
    assert (ours.l, ours.p) == (ref.l, ref.p) and ours == Irrep(name[1:])


def test_from_import_and_arithmetic():
    from equiscale.o3.irrep import l1o, l2o

    assert l1o + l2o == Irrep("1o") + Irrep("2o")
    assert irrep.l0e == Irrep("0e") and irrep.l1o.dim == 3
    assert not hasattr(irrep, "l1q")
