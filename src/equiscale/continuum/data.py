"""The fluid data format and its generation.

A data file is an ``.npz`` holding ``vorticity`` (float32 ``[N, T + 1, R, R]``: N trajectories of
T + 1 frames on an R x R periodic grid, x along the columns, y along the rows: the layout
``"trajectory time y x"``) and the scalars ``dt`` (time between frames), ``viscosity`` and
``domain_size`` (side of the square). Any file in this format works with the training and
evaluation commands; only ``vorticity`` is required.

Layout: a file may say how its axes are ordered in a string entry ``layout`` naming the four axes
``trajectory``, ``time``, ``x`` and ``y`` in order (separated by spaces or commas; ``n``/``batch``/
``sample`` and ``t`` are accepted too). Another solver's ``"trajectory time x y"`` (``w[n, t, i, j]``
at ``x_i, y_j``) is transposed on loading to ours, which matters: taking it as ours would mirror
the flow about the diagonal, and a mirrored vorticity field is the wrong physics (vorticity is a
pseudo-scalar: a reflected flow has the opposite sign). A file **without** a ``layout`` entry is
taken as ours, ``"trajectory time y x"`` (:data:`LAYOUT`); :attr:`FluidData.layout_note` says so.
Files written here (:func:`save_fluid`) always carry the entry.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from equiscale.continuum.simulate import cfl_substeps, random_vorticity, simulate_vorticity
from equiscale.train.progress import progress_bar

__all__ = ["FluidData", "LAYOUT", "parse_layout", "load_fluid", "save_fluid", "generate_fluid"]

LAYOUT = "trajectory time y x"
_AXIS_NAMES = {"trajectory": "trajectory", "trajectories": "trajectory", "n": "trajectory", "batch": "trajectory",
               "sample": "trajectory", "time": "time", "t": "time", "x": "x", "y": "y"}


@dataclass(frozen=True)
class FluidData:
    """Vorticity trajectories ``[N, T + 1, R, R]`` (float32 numpy) and their metadata (NaN if unknown)."""

    vorticity: np.ndarray
    dt: float = math.nan
    viscosity: float = math.nan
    domain_size: float = 2 * math.pi
    #: the file's ``layout`` entry, or None when it had none (and :data:`LAYOUT` was assumed)
    source_layout: str | None = LAYOUT

    @property
    def layout_note(self) -> str:
        """One line saying how the file's axes were read."""
        if self.source_layout is None:
            return f"the file has no 'layout' entry: its vorticity was taken as [{LAYOUT}] (x along the columns)"
        if parse_layout(self.source_layout) == parse_layout(LAYOUT):
            return f"layout [{LAYOUT}] as stored"
        return f"layout [{self.source_layout}] transposed to [{LAYOUT}]"

    @property
    def trajectories(self) -> int:
        return self.vorticity.shape[0]

    @property
    def frames(self) -> int:
        return self.vorticity.shape[1]

    @property
    def resolution(self) -> int:
        return self.vorticity.shape[-1]


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def parse_layout(text: str) -> tuple[str, ...]:
    """The axis names of a ``layout`` string, e.g. ``"trajectory time x y"`` -> ``("trajectory", "time", "x", "y")``.

    Args:
        text: four axis names separated by spaces or commas (brackets ignored).

    Returns:
        The canonical names, in the file's order.

    Raises:
        ValueError: not a permutation of trajectory, time, x and y.
    """
    words = [w for w in str(text).replace(",", " ").replace("[", " ").replace("]", " ").lower().split() if w]
    names = tuple(_AXIS_NAMES.get(w, w) for w in words)
    if sorted(names) != sorted(("trajectory", "time", "x", "y")):
        raise ValueError(f"layout {text!r} must name the axes trajectory, time, x and y once each, in the file's order "
                         f"(ours: {LAYOUT!r})")
    return names


def save_fluid(path: str | os.PathLike, data: FluidData) -> None:
    """Write ``data`` to ``path`` (``.npz``) atomically, in our layout (:data:`LAYOUT`, stated in the file)."""
    arrays = {"vorticity": np.asarray(data.vorticity, dtype=np.float32), "dt": np.float64(data.dt),
              "viscosity": np.float64(data.viscosity), "domain_size": np.float64(data.domain_size),
              "layout": np.str_(LAYOUT)}
    _atomic_write(Path(path), lambda file: np.savez(file, **arrays))


def load_fluid(path: str | os.PathLike) -> FluidData:
    """Read and check a fluid ``.npz``, transposed to our layout; ValueError naming the problem if it is not usable.

    Args:
        path: the file; its ``layout`` entry, when present, says how ``vorticity``'s axes are
            ordered (see the module docstring); without one it is taken as :data:`LAYOUT`.

    Returns:
        The data with vorticity ``[N, T + 1, R, R]`` as ``[trajectory, time, y, x]``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fluid data file {path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets one clear message
        raise ValueError(f"{path} is not a readable .npz file: {error}") from error
    with archive:
        if "vorticity" not in archive.files:
            raise ValueError(f"{path} has no 'vorticity' array (it holds {sorted(archive.files)}); "
                             f"expected vorticity [N, T + 1, R, R]")
        w = np.asarray(archive["vorticity"])
        meta = {}
        for key in ("dt", "viscosity", "domain_size"):
            if key in archive.files:
                value = np.asarray(archive[key])
                if value.size != 1 or not np.issubdtype(value.dtype, np.number):
                    raise ValueError(f"{path}: '{key}' must be a single number, got shape {value.shape}")
                meta[key] = float(value.reshape(()))
        layout = None
        if "layout" in archive.files:
            value = np.asarray(archive["layout"])
            if value.size != 1 or value.dtype.kind not in "US":
                raise ValueError(f"{path}: 'layout' must be one string such as {LAYOUT!r}, got {value.dtype} {value.shape}")
            item = value.reshape(()).item()
            layout = item.decode() if isinstance(item, bytes) else str(item)
    if layout is not None:
        try:
            axes = parse_layout(layout)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        if w.ndim == 4:
            w = np.transpose(w, [axes.index(a) for a in parse_layout(LAYOUT)])
    if w.ndim != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"{path}: vorticity must be [N, T + 1, R, R] with square frames, got shape {w.shape}")
    if w.shape[0] < 1 or w.shape[1] < 2:
        raise ValueError(f"{path}: vorticity needs at least 1 trajectory of 2 frames, got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.floating):
        raise ValueError(f"{path}: vorticity must be floating point, got {w.dtype}")
    bad = ~np.isfinite(w)
    if bad.all():
        raise ValueError(f"{path}: vorticity holds no finite value (all {w.size} are NaN or infinite)")
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"{path}: vorticity holds {int(bad.sum())} NaN or infinite values "
                         f"(first at trajectory {where[0]}, frame {where[1]})")
    return FluidData(np.ascontiguousarray(w, dtype=np.float32), **meta, source_layout=layout)


def _trajectory_seeds(seed: int, count: int) -> list[int]:
    sequence = np.random.SeedSequence(seed)
    return [int(child.generate_state(1)[0]) for child in sequence.spawn(count)]


def generate_fluid(out: str | os.PathLike, trajectories: int = 32, steps: int = 50, resolution: int = 64,
                   viscosity: float = 5e-3, dt: float = 0.2, seed: int = 0, domain_size: float = 2 * math.pi,
                   chunk: int = 4, progress: bool = True) -> FluidData:
    """Simulate decaying turbulence from random smooth vorticity and write it to ``out`` (``.npz``).

    Trajectories are simulated in float64 in chunks of ``chunk``, each from its own seed (derived
    from ``seed``) with one number of sub-steps for all (from the CFL bound of the fastest initial
    field), so the result does not depend on ``chunk``. Finished chunks are kept in
    ``out + '.partial/'``: an interrupted run resumes where it stopped when called again with the same
    settings. The final file is written atomically and the partial folder removed.
    """
    for value, what in ((trajectories, "trajectories"), (steps, "steps"), (resolution, "resolution"), (chunk, "chunk")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"generate_fluid: {what} must be a positive int, got {value!r}")
    if resolution < 8:
        raise ValueError(f"generate_fluid: resolution must be >= 8, got {resolution}")
    out = Path(out)
    settings = {"trajectories": trajectories, "steps": steps, "resolution": resolution, "viscosity": viscosity,
                "dt": dt, "seed": seed, "domain_size": domain_size}
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        try:
            same = json.loads((partial / "settings.json").read_text()) == settings
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    (partial / "settings.json").write_text(json.dumps(settings))
    initial = torch.stack([random_vorticity(1, resolution, domain_size=domain_size,
                                            generator=torch.Generator().manual_seed(s))[0]
                           for s in _trajectory_seeds(seed, trajectories)])
    substeps = cfl_substeps(initial, dt, domain_size)
    starts = list(range(0, trajectories, chunk))
    bar = progress_bar(enabled=progress, total=trajectories, desc="fluid trajectories", unit="traj")
    parts = []
    for start in starts:
        path = partial / f"chunk_{start:06d}.npy"
        stop = min(start + chunk, trajectories)
        if path.exists():
            parts.append(np.load(path))
        else:
            frames = simulate_vorticity(initial[start:stop], dt, steps, viscosity, domain_size, substeps=substeps)
            array = frames.to(torch.float32).numpy()
            _atomic_write(path, lambda file, array=array: np.save(file, array))
            parts.append(array)
        bar.update(stop - start)
    bar.close()
    data = FluidData(np.concatenate(parts), dt=float(dt), viscosity=float(viscosity), domain_size=float(domain_size))
    if not np.isfinite(data.vorticity).all():
        raise ValueError("the simulation diverged (NaN or infinite vorticity): lower dt or raise the viscosity")
    save_fluid(out, data)
    shutil.rmtree(partial, ignore_errors=True)
    return data
