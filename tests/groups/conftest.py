"""Shared helpers for the group tests."""
import contextlib

import pytest
import torch


def _o3_ready() -> bool:
    """True once equiscale.o3 provides Irrep(l, p).D_from_matrix (written in parallel)."""
    try:
        from equiscale.o3 import Irrep

        Irrep(2, 1).D_from_matrix(torch.eye(3, dtype=torch.float64))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not there yet"
        return False


needs_o3 = pytest.mark.skipif(not _o3_ready(), reason="equiscale.o3 Irrep.D_from_matrix not available")


@contextlib.contextmanager
def e3nn_float64():
    """e3nn builds Wigner-D in torch's default dtype: float64 references need it set, then restored."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
