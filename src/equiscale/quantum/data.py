"""DFT datasets on disk: a directory of ``.npz`` shards and a ``manifest.json``; the reader and the shard writer.

Layout of ``water.dft/`` (written by ``equiscale data dft``)::

    manifest.json      {"format": 1, "molecule", "basis", "xc", "shells": {"Z": [l, ...]}, "units",
                        "frames" (stored), "failed" (SCF failures skipped), "failures": [[frame, reason]],
                        "shards": [{"file", "frames", "failed"}], "seed", "displacements",
                        "settings" (what a resumed run must match), "complete"}
    shard-00000.npz    K consecutive frames of one molecule (--shard-size)
    shard-00001.npz    ...

Each shard holds, stacked over its K frames: ``numbers`` (A,) int64, ``positions`` (K, A, 3)
Angstrom, ``energy`` (K,) Hartree, ``fock``, ``overlap``, ``density`` (K, n, n) in our irreps AO
basis (:func:`~equiscale.quantum.basis.pyscf_to_irreps`), ``orbital_energies`` (K, n) Hartree,
``dipole`` (K, 3) and ``polarizability`` (K, 3, 3) in atomic units, ``frame_index`` (K,) int64,
and ``failed_index``/``failed_reason`` for the shard's frames whose SCF did not converge.

Why ``.npz`` shards in a directory, for 10^4-10^5 frames of a few hundred orbitals: such a dataset
holds three dense ``(n, n)`` float64 matrices per frame, 2 MB at n = 300, so 20-200 GB in all, and
labelling it takes days of CPU. So:

- resumable by construction: each shard (a group of ``--shard-size`` consecutive frames) is written
  whole to a temporary name and renamed (atomic on POSIX). A killed run leaves only complete shards,
  and resuming is "compute the shards that are missing"; there is never a half-written file to
  repair, while one interrupted write into a single HDF5 file can corrupt all of it.
- parallel without locks: workers (local processes or Dask workers on other machines) return the
  arrays of a frame, and the process that runs the command writes each shard as soon as its frames
  are back: one writer, no locking (HDF5 needs a lock or MPI-IO for concurrent writers), and no
  shared filesystem needed by remote workers.
- lazy reading: a reader opens one shard at a time (a few MB), so memory does not grow with the
  dataset; a shard is a plain numpy file (no HDF5 library), inspectable with ``numpy.load``.
- uncompressed: dense float64 matrices barely compress, and loading stays a copy.

A training loop that shuffles should shuffle shards, then frames within them
(:meth:`DFTDataset.shard_ranges`), to load each shard once per epoch.
"""
from __future__ import annotations

import bisect
import json
import os
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from equiscale.quantum.basis import orbital_count, shells_from_json, shells_to_json

__all__ = ["FORMAT", "UNITS", "MANIFEST", "DFTDataset", "ShardWriter", "shard_name", "write_shard", "read_shard",
           "read_manifest", "write_manifest"]

FORMAT = 1
MANIFEST = "manifest.json"
UNITS = {"positions": "Angstrom", "energy": "Hartree", "fock": "Hartree", "overlap": "1", "density": "1 (trace(D S) = electrons)",
         "orbital_energies": "Hartree", "dipole": "e a0 (atomic units, about the origin)",
         "polarizability": "a0^3 (atomic units)"}
REQUIRED = ("format", "basis", "xc", "shells", "shards")


def shard_name(index: int) -> str:
    """``shard-00012.npz`` for task 12."""
    return f"shard-{index:05d}.npz"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_shard(directory: str | os.PathLike, index: int, arrays: Mapping[str, np.ndarray],
                failed: list | None = None) -> Path:
    """Write one shard atomically (temporary file, then rename); returns its path.

    ``failed`` lists ``[frame_index, reason]`` of the task's frames whose SCF did not converge.
    """
    path = Path(directory) / shard_name(index)
    failed = failed or []
    data = dict(arrays)
    data["failed_index"] = np.array([int(i) for i, _ in failed], dtype=np.int64)
    data["failed_reason"] = np.array([str(r) for _, r in failed], dtype=str)
    _atomic_write(path, lambda file: np.savez(file, **data))
    return path


def _unreadable(path: Path, error: BaseException) -> ValueError:
    return ValueError(f"{path} is truncated or corrupt ({type(error).__name__}: {str(error).strip()[:80]}); "
                      "delete it and run the same `equiscale data dft` command again to recompute it")


def read_shard(path: str | os.PathLike, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of one shard (only ``keys`` when given); one-line errors for missing or broken files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (listed in {MANIFEST}): run the same `equiscale data dft` "
                                "command again to recompute it")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in (keys if keys is not None else npz.files)}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise _unreadable(path, error) from None


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a dataset directory; one-line errors for a missing or malformed one."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        hint = " (a DFT dataset is a directory written by `equiscale data dft`)" if directory.is_file() else ""
        raise FileNotFoundError(f"DFT dataset {directory} does not exist or is not a directory{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {MANIFEST}: not a dataset written by `equiscale data dft`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    missing = [k for k in REQUIRED if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: not a manifest of `equiscale data dft`")
    if manifest["format"] != FORMAT:
        raise ValueError(f"{path} has format {manifest['format']!r}; this version reads format {FORMAT}")
    return manifest


def write_manifest(directory: str | os.PathLike, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` atomically."""
    text = json.dumps(manifest, indent=1).encode()
    _atomic_write(Path(directory) / MANIFEST, lambda file: file.write(text))


class ShardWriter:
    """Writes a dataset directory: refuses other settings, finds the finished shards, writes the rest.

    Args:
        out: the dataset directory (created when missing; an existing one must hold a manifest of
            the same ``info["settings"]``, or be empty).
        info: manifest entries (``molecule``, ``basis``, ``xc``, ``seed``, ``displacements``, ...,
            and ``settings``: what a resumed run must repeat).
        shells: the basis description ``{Z: [l, ...]}``.
        plan: the frame indices of each shard.
        say: prints notes (a shard found truncated and computed again).

    :attr:`missing` lists the shards still to compute. The manifest is rewritten (atomically) after
    every shard, so an interrupted run leaves a readable dataset of the shards done so far.

    Raises:
        ValueError: one line when ``out`` is a file, a non-empty directory without a manifest, or a
            dataset written with other settings (naming each difference).
    """

    def __init__(self, out: str | os.PathLike, info: Mapping[str, Any], shells: Mapping[int, list[int]],
                 plan: list[list[int]], say=print) -> None:
        self.out = Path(out)
        self.info = dict(info)
        self.shells = dict(shells)
        self.plan = plan
        self.say = say
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"{self.out} exists and is not a directory (a DFT dataset is a directory)")
        if (self.out / MANIFEST).exists():
            saved = read_manifest(self.out).get("settings", {})
            changed = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in self.info["settings"].items() if saved.get(k) != v]
            if changed:
                raise ValueError(f"{self.out} was written with other settings ({'; '.join(changed)}): run the same "
                                 "command to resume it, or give another --out")
        elif self.out.is_dir() and any(self.out.iterdir()):
            raise ValueError(f"{self.out} exists, is not empty and has no {MANIFEST}: give a new or empty --out")
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in self.out.glob(".shard-*.tmp-*"):
            stale.unlink()
        self.done: dict[int, dict[str, Any]] = {}
        for index, frames in enumerate(plan):
            found = self._existing(index, frames)
            if found is not None:
                self.done[index] = found
        self.missing = [i for i in range(len(plan)) if i not in self.done]
        self._write_manifest()

    def _existing(self, index: int, frames: list[int]) -> dict[str, Any] | None:
        """The record of a finished shard (None if it is missing, unreadable or of other frames)."""
        path = self.out / shard_name(index)
        if not path.exists():
            return None
        try:
            arrays = read_shard(path, ("frame_index", "failed_index", "failed_reason"))
        except ValueError:
            self.say(f"{path} is truncated or corrupt: computing it again")
            path.unlink()
            return None
        if sorted(arrays["frame_index"].tolist() + arrays["failed_index"].tolist()) != sorted(frames):
            self.say(f"{path} holds other frames than its task: computing it again")
            path.unlink()
            return None
        failed = [[int(i), str(r)] for i, r in zip(arrays["failed_index"], arrays["failed_reason"])]
        return {"file": path.name, "frames": len(arrays["frame_index"]), "failed": failed}

    def write(self, index: int, arrays: Mapping[str, np.ndarray], failed: list) -> None:
        """Write shard ``index`` (atomically) and the manifest."""
        path = write_shard(self.out, index, arrays, failed)
        self.done[index] = {"file": path.name, "frames": len(arrays["frame_index"]), "failed": list(failed)}
        self._write_manifest()

    def counts(self) -> dict[str, int]:
        """``frames`` stored and ``failed`` (skipped) so far."""
        return {"frames": sum(d["frames"] for d in self.done.values()),
                "failed": sum(len(d["failed"]) for d in self.done.values())}

    def _write_manifest(self) -> None:
        records = [d for _, d in sorted(self.done.items())]
        failures = [f for d in records for f in d["failed"]]
        write_manifest(self.out, {
            "format": FORMAT, **{k: v for k, v in self.info.items() if k != "settings"},
            "shells": shells_to_json(self.shells), "units": UNITS, **self.counts(), "failures": failures,
            "shards": [{"file": d["file"], "frames": d["frames"], "failed": len(d["failed"])} for d in records],
            "settings": self.info["settings"], "complete": len(self.done) == len(self.plan)})


class DFTDataset:
    """The frames of a DFT dataset directory, read lazily one shard at a time.

    Args:
        path: the directory written by ``equiscale data dft``.
        torch: return torch tensors (float64, int64 for integers) instead of numpy arrays.
        cache_shards: how many loaded shards to keep (least recently used dropped first).

    ``dataset[i]`` is a dict for frame ``i``: ``numbers`` (A,), ``positions`` (A, 3) Angstrom,
    ``energy`` () Hartree, ``fock``/``overlap``/``density`` (n, n) in our irreps basis,
    ``orbital_energies`` (n,), ``dipole`` (3,), ``polarizability`` (3, 3) (when computed), and
    ``frame_index`` () (the frame's number in the labelling run). :attr:`shells` describes the basis;
    :meth:`irreps` gives a frame's AO irreps.

    Raises:
        FileNotFoundError: a missing directory, manifest or shard (one line).
        ValueError: a manifest of another format, a truncated shard, or a shard whose orbital
            count does not match the manifest's shells (one line).
    """

    def __init__(self, path: str | os.PathLike, torch: bool = False, cache_shards: int = 2) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.shells = shells_from_json(self.manifest["shells"])
        self.basis: str = self.manifest["basis"]
        self.xc: str = self.manifest["xc"]
        self.torch = torch
        self.cache_shards = max(1, cache_shards)
        self._shards = [s for s in self.manifest["shards"] if int(s["frames"]) > 0]
        self._starts = np.cumsum([0] + [int(s["frames"]) for s in self._shards]).tolist()
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return self._starts[-1]

    @property
    def complete(self) -> bool:
        """Whether every frame of the labelling run is done (False: an interrupted run; rerun its command)."""
        return bool(self.manifest.get("complete", True))

    def shard_ranges(self) -> list[range]:
        """The frame indices of each shard, in order (for shard-wise shuffling)."""
        return [range(a, b) for a, b in zip(self._starts[:-1], self._starts[1:])]

    def irreps(self, numbers):
        """The AO irreps of a molecule with these atomic numbers (:func:`~equiscale.quantum.basis.molecule_irreps`)."""
        from equiscale.quantum.basis import molecule_irreps

        return molecule_irreps([int(z) for z in numbers], self.shells)

    def _load(self, shard: int) -> dict[str, np.ndarray]:
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        entry = self._shards[shard]
        path = self.path / entry["file"]
        arrays = read_shard(path)
        self._validate(path, arrays, int(entry["frames"]))
        self._cache[shard] = arrays
        while len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return arrays

    def _validate(self, path: Path, arrays: Mapping[str, np.ndarray], frames: int) -> None:
        missing = [k for k in ("numbers", "positions", "energy", "fock", "overlap", "density", "orbital_energies",
                               "dipole", "frame_index") if k not in arrays]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)}: not a shard of `equiscale data dft`")
        if len(arrays["energy"]) != frames:
            raise ValueError(f"{path} holds {len(arrays['energy'])} frames but {MANIFEST} lists {frames}")
        try:
            n = orbital_count(arrays["numbers"], self.shells)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        if arrays["fock"].shape[1:] != (n, n):
            raise ValueError(f"{path} holds {arrays['fock'].shape[1]} orbitals per molecule, but the basis "
                             f"described in {MANIFEST} gives {n} for its atoms: the shard and manifest do not match")

    def locate(self, index: int) -> tuple[int, int]:
        """``(shard, position in that shard)`` of frame ``index`` (shards counted as :meth:`shard_ranges`)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} is out of range for {len(self)} frames")
        index = index % len(self)
        shard = bisect.bisect_right(self._starts, index) - 1
        return shard, index - self._starts[shard]

    def shard_file(self, shard: int) -> str:
        """The file name of shard ``shard`` (counted as :meth:`shard_ranges`)."""
        return str(self._shards[shard]["file"])

    def shard_arrays(self, shard: int) -> dict[str, np.ndarray]:
        """All arrays of shard ``shard`` (counted as :meth:`shard_ranges`), through the shard cache."""
        return self._load(shard)

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, local = self.locate(index)
        arrays = self._load(shard)
        item = {k: (v if k == "numbers" else v[local]).copy() for k, v in arrays.items() if not k.startswith("failed_")}
        if self.torch:
            import torch

            item = {k: torch.as_tensor(np.asarray(v)) for k, v in item.items()}
        return item

    def __repr__(self) -> str:
        partial = "" if self.complete else ", incomplete"
        return (f"DFTDataset({str(self.path)!r}: {len(self)} frames of {self.manifest.get('molecule')}, "
                f"{self.xc}/{self.basis}, {len(self._shards)} shards{partial})")
