"""Deployment: a trained model as a file that plain PyTorch runs, without equiscale.

Two formats, both written as ``.pt2``:

* ``"aoti"`` (default): an AOTInductor package (``torch._inductor.aoti_compile_and_package``),
  compiled C++ for this machine's CPU (or CUDA). Python loads it with
  ``torch._inductor.aoti_load_package(path)``; C++ with ``torch::inductor::AOTIModelPackageLoader``.
* ``"program"``: a serialized ``torch.export.ExportedProgram`` (``torch.export.save``), portable
  and quick to write; ``torch.export.load(path).module()`` runs it in Python (eagerly).

The mechanism (:func:`export_program`, :func:`save_program`) knows no application: an
application wraps its model into a module with tensor inputs and outputs and calls these.
Derivatives that the deployed function computes by autograd (forces, stress) are unfolded into
plain ATen operations before export (``make_fx`` traces through the autograd engine; exporting
``torch.autograd.grad`` directly leaves fake constants in the program in torch 2.13), and the
export runs on equiscale's PyTorch path (:func:`equiscale._kernels.pytorch_path`), so the file
calls no ``torch.ops.equiscale`` operator and needs no compiled equiscale library. Metadata
(strings) travel inside the file: ``get_metadata()`` of an AOTInductor package, the
``extra_files["metadata.json"]`` of a program.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence

import torch

from equiscale import _kernels
from equiscale.errors import InvalidArgumentError

__all__ = ["FORMATS", "export_program", "load_metadata", "save_program", "unfold_autograd"]

FORMATS = ("aoti", "program")
METADATA_FILE = "metadata.json"


@contextlib.contextmanager
def _no_duck_shapes() -> Iterator[None]:
    """Symbolic sizes that happen to be equal in the example (atoms == channels) stay distinct."""
    import torch.fx.experimental._config as fx_config

    previous = fx_config.use_duck_shape
    fx_config.use_duck_shape = False
    try:
        yield
    finally:
        fx_config.use_duck_shape = previous


def unfold_autograd(module: torch.nn.Module, example: Sequence[torch.Tensor]) -> torch.fx.GraphModule:
    """``module`` traced into a graph of ATen operations, its ``torch.autograd.grad`` calls unfolded.

    Args:
        module: takes ``example``'s tensors, returns tensors (it may differentiate inside).
        example: example inputs; sizes are traced symbolically (no size is baked in by tracing).

    Returns:
        A ``GraphModule`` with the same inputs and outputs and no autograd inside; its parameters
        are frozen into constants.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    with _no_duck_shapes(), _kernels.pytorch_path():
        return make_fx(module, tracing_mode="symbolic", _allow_non_fake_inputs=True,
                       _error_on_data_dependent_ops=True)(*[t.clone() for t in example])


def export_program(module: torch.nn.Module, example: Sequence[torch.Tensor],
                   dynamic_shapes: Optional[Sequence[Any]] = None,
                   differentiates: bool = False) -> "torch.export.ExportedProgram":
    """``torch.export`` of ``module`` on equiscale's PyTorch path (no custom operators).

    Args:
        module: the model wrapped to take and return tensors only.
        example: example inputs.
        dynamic_shapes: one entry per input, as ``torch.export.export`` takes them
            (``{axis: torch.export.Dim(...)}`` or None).
        differentiates: the module calls ``torch.autograd.grad`` (forces): unfold it first
            (:func:`unfold_autograd`).

    Returns:
        The exported program, in eval mode.
    """
    module = module.eval()
    example = tuple(example)
    if differentiates:
        module = unfold_autograd(module, example)
    with _kernels.pytorch_path():
        return torch.export.export(module, example, dynamic_shapes=None if dynamic_shapes is None else
                                   tuple(dynamic_shapes), strict=False)


def _strings(metadata: Mapping[str, Any]) -> Dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}


def save_program(program: "torch.export.ExportedProgram", out: str | os.PathLike, fmt: str = "aoti",
                 metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``program`` to ``out`` as an AOTInductor package or an exported program.

    Args:
        program: from :func:`export_program`.
        out: the ``.pt2`` file to write (its folder is created).
        fmt: ``"aoti"`` (compiled; minutes on a small CPU) or ``"program"`` (``torch.export.save``).
        metadata: JSON-able values stored in the file (non-strings are JSON-encoded), read back by
            :func:`load_metadata` or the loaders' own calls.

    Returns:
        The path written.
    """
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    strings = _strings(metadata or {})
    partial = out.with_name(out.stem + ".partial.pt2")  # torch checks the suffix
    if fmt == "program":
        torch.export.save(program, partial, extra_files={METADATA_FILE: json.dumps(strings)})
    else:
        from torch._inductor import aoti_compile_and_package

        aoti_compile_and_package(program, package_path=str(partial),
                                 inductor_configs={"aot_inductor.metadata": strings})
    os.replace(partial, out)
    return out


def load_metadata(path: str | os.PathLike) -> Dict[str, str]:
    """The metadata strings stored in a file written by :func:`save_program` (either format)."""
    import zipfile

    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        found = [n for n in names if n.endswith(f"extra/{METADATA_FILE}") or n.endswith(f"/{METADATA_FILE}")]
    if found:
        extra = {METADATA_FILE: ""}
        torch.export.load(path, extra_files=extra)
        return json.loads(extra[METADATA_FILE])
    from torch._inductor import aoti_load_package

    return dict(aoti_load_package(str(path)).get_metadata())
