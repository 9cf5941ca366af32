"""The library's exception for invalid arguments.

Code written against e3nn catches ``AssertionError`` where e3nn asserts on its arguments; code
written for equiscale catches ``ValueError``. :class:`InvalidArgumentError` is both, so either
``except`` clause catches it, and its message names the problem.
"""
from __future__ import annotations

__all__ = ["InvalidArgumentError"]


class InvalidArgumentError(ValueError, AssertionError):
    """An argument that breaks a documented rule (shape, irreps, selection rule, range).

    Caught by ``except ValueError`` and by ``except AssertionError`` alike.
    """
