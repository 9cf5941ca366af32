"""Compiled C++ kernels (CPU), registered as ``torch.ops.equiscale.*`` custom operators.

Public API (every kernel's Python side and the library use only these):

* :func:`load` builds (once per machine, cached) and loads the kernels, then registers each
  kernel's Python side; returns False, with one warning line, when no compiler/ninja is present
  or the build fails. ``EQUISCALE_KERNELS=off`` in the environment forces the PyTorch path (no
  warning, nothing built).
* :func:`available` is True when the kernels are built, loaded and not disabled.
* :func:`use_kernels` ``(*tensors)`` is True when :func:`available` and every tensor is on CPU;
  callers branch on it and otherwise run the PyTorch path (the fallback and the test reference).
* :func:`pytorch_path` is a context in which :func:`available` is False: what is traced or
  exported inside it calls no ``torch.ops.equiscale`` operator (a file for plain PyTorch).

Conventions for a kernel family ``<name>``: ``csrc/<name>.cpp`` defines its operators with
``TORCH_LIBRARY_FRAGMENT(equiscale, m)`` and their CPU implementations with
``TORCH_LIBRARY_IMPL(equiscale, CPU, m)`` (threads: ``csrc/parallel.h`` or ``at::parallel_for``);
``<name>.py`` is its Python side, importable without the library, with a ``register()`` function
that :func:`load` calls once after the library is loaded (``torch.library.register_fake`` /
``register_autograd`` need the operator to exist), and the function the library calls.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Iterator, Optional

import torch

__all__ = ["available", "load", "pytorch_path", "use_kernels"]

ENV = "EQUISCALE_KERNELS"


class _State:
    """Outcome of the one build/load attempt of this process (None: not tried yet)."""

    loaded: Optional[bool] = None
    reason: str = ""
    registered: set = set()  # Python sides already registered (registration is once per process)
    forced_off: int = 0  # depth of pytorch_path() contexts


_STATE = _State()


def disabled() -> bool:
    """True when ``EQUISCALE_KERNELS`` is ``off`` (also ``0``, ``false``, ``no``)."""
    return os.environ.get(ENV, "").strip().lower() in ("off", "0", "false", "no")


def _register_python_sides() -> None:
    from equiscale._kernels import _build

    for source in _build.sources():
        name = f"{__name__}.{Path(source).stem}"
        if name in _STATE.registered:
            continue
        if importlib.util.find_spec(name) is None:  # a kernel without a Python side (yet)
            continue
        register = getattr(importlib.import_module(name), "register", None)
        if register is not None:
            register()
        _STATE.registered.add(name)


def load() -> bool:
    """Build (if needed) and load the kernels once per process; True on success.

    On failure warns once: ``equiscale: compiled kernels unavailable (<reason>); using the
    PyTorch path``. With ``EQUISCALE_KERNELS=off`` returns False without building or warning.
    """
    if disabled():
        return False
    if _STATE.loaded is None:
        from equiscale._kernels import _build

        try:
            _build.build()
            _register_python_sides()
            _STATE.loaded = True
        except Exception as error:  # no compiler, no ninja, compile or load error
            _STATE.loaded = False
            _STATE.reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
            # warn_explicit with no source file: Python prints the warning as one line
            warnings.warn_explicit(f"equiscale: compiled kernels unavailable ({_STATE.reason}); using the PyTorch "
                                   "path", RuntimeWarning, filename=__name__, lineno=0, module=__name__)
    return bool(_STATE.loaded)


def available() -> bool:
    """True when the kernels are built and loaded (loading them on first call) and not disabled.

    Inside ``torch.compile`` tracing nothing is built: the answer is the state decided before.
    False inside :func:`pytorch_path`.
    """
    if _STATE.forced_off:
        return False
    if torch.compiler.is_compiling():
        return bool(_STATE.loaded)
    return load()


def use_kernels(*tensors: torch.Tensor) -> bool:
    """True when the compiled kernels should run on these tensors: available and all on CPU."""
    return available() and all(t.device.type == "cpu" for t in tensors)


@contextlib.contextmanager
def pytorch_path() -> Iterator[None]:
    """Within this context every caller runs the PyTorch path (:func:`available` is False)."""
    _STATE.forced_off += 1
    try:
        yield
    finally:
        _STATE.forced_off -= 1


def _reset() -> None:
    """Forget the load attempt (tests only: a loaded library cannot be unloaded)."""
    _STATE.loaded = None
    _STATE.reason = ""
