"""Shared fixtures for the point-layer tests."""
from __future__ import annotations

import pytest
import torch

from equiscale import groups


@pytest.fixture
def o3_group():
    """The group O(3): rotations and reflections (``sample`` gives orthogonal 3x3 matrices)."""
    return groups.O3()


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)
