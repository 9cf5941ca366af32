"""``equiscale export fluid``: a trained fluid surrogate as a file plain PyTorch (or C++) runs.

The exported function is one step of the surrogate, ``w (B, H, W) -> w' (B, H, W)``: vorticity at
time t to vorticity at t + dt (the run's ``dt``, in the file's metadata), on the training grid
(``H = W = resolution``, fixed) with a dynamic batch ``B >= 1``. A rollout calls it in a loop.
Value checks of the eager model (finite vorticity) are not in the file: they are the caller's.

This module is light (no torch at import): the command line imports it to build ``--help``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from equiscale.deploy_settings import ExportSettings

__all__ = ["ExportFluid", "export_fluid", "fluid_for_export"]


@dataclass
class ExportFluid(ExportSettings):
    """``equiscale export fluid``: an AOTInductor package (or exported program) of a fluid surrogate."""


def fluid_for_export(model: Any) -> Any:
    """``model`` (eval mode) as the function ``w (B, H, W) -> w' (B, H, W)`` (its own forward)."""
    import torch

    class FluidStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return self.model(w)

    return FluidStep().eval()


def export_fluid(settings: ExportFluid) -> int:
    """Run ``equiscale export fluid``: load, wrap, export, write; prints what was written."""
    import torch
    from torch.export import Dim

    from equiscale import __version__, deploy
    from equiscale.check import checkpoint_file
    from equiscale.continuum.training import KIND, run_model
    from equiscale.train import load_checkpoint

    file = checkpoint_file(settings.checkpoint)
    state = load_checkpoint(file, kind=KIND, map_location="cpu")
    header = state["header"]
    statistics = header.get("statistics") or {}
    resolution = int(statistics.get("resolution") or 64)
    dtype = getattr(torch, settings.dtype)
    model = run_model(state, file).to(device=settings.device, dtype=dtype)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    function = fluid_for_export(model)
    example = torch.randn(3, resolution, resolution, generator=torch.Generator().manual_seed(0), dtype=dtype)
    example = example.to(settings.device) * float(statistics.get("field_scale", 1.0))
    program = deploy.export_program(function, (example,), ({0: Dim("batch", min=1)},))
    metadata = {"kind": "fluid", "model": header["settings"].get("model"), "group": header["settings"].get("group"),
                "resolution": resolution, "dt": statistics.get("dt"), "viscosity": statistics.get("viscosity"),
                "dtype": settings.dtype, "device": settings.device,
                "inputs": f"w (B, {resolution}, {resolution}) vorticity at t",
                "outputs": f"w (B, {resolution}, {resolution}) vorticity at t + dt", "source": str(file),
                "equiscale_version": __version__}
    out = deploy.save_program(program, settings.out, settings.format, metadata)
    print(f"wrote {out} ({settings.format}, {settings.dtype}, {metadata['model']} on {resolution}x{resolution})")
    return 0
