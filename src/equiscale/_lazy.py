"""Package attributes imported on first use (PEP 562), so that a package's light modules stay light.

A package declares ``__getattr__ = lazy_attributes(__name__, {"Name": "package.module", ...})``:
``package.Name`` then imports ``package.module`` the first time it is asked for; an unknown name is
the usual ``AttributeError``.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """The module-level ``__getattr__`` of ``package`` that takes each name in ``modules`` from its module."""
    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(importlib.import_module(modules[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
