"""The settings every ``equiscale export TASK`` command shares (light: no torch, for ``--help``).

An application's export settings inherit :class:`ExportSettings` and add what is its own; the
mechanism that writes the file is :mod:`equiscale.deploy`.
"""
from __future__ import annotations

from dataclasses import dataclass

from equiscale.settings import Settings, setting

__all__ = ["ExportSettings"]


@dataclass
class ExportSettings(Settings):
    """``equiscale export TASK``: an AOTInductor package (or exported program) of a trained model."""

    checkpoint: str = setting(None, help="best.pt or last.pt written by the task's train command (a run directory: "
                              "its best.pt)", positional=True, required=True, metavar="CHECKPOINT")
    out: str = setting("model.pt2", help="the file to write", metavar="FILE.pt2")
    format: str = setting("aoti", help="'aoti': AOTInductor package, compiled C++ for this machine (Python: "
                          "torch._inductor.aoti_load_package, C++: AOTIModelPackageLoader); 'program': a "
                          "torch.export program (torch.export.load), quick to write", choices=("aoti", "program"))
    dtype: str = setting("float32", help="precision of the exported function", choices=("float32", "float64"))
    device: str = setting("cpu", help="device the package is compiled for ('cpu', 'cuda')")
