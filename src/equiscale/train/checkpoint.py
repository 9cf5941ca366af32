"""Checkpoint files: the header every equiscale checkpoint carries, atomic saving, careful loading.

Every ``last.pt``/``best.pt`` written by an application holds ``state["header"]``, the dict of a
:class:`CheckpointHeader`: which kind of model it is (``"fluid"``, ``"potential"``...), the settings
and data statistics it was trained with, its dtype, the checkpoint format and the library version.
:func:`load_checkpoint` refuses, with one line naming the problem, a missing file, a file that is not
a checkpoint (text, HDF5, npz, ...), a truncated one, one without a header, one of a newer format and,
when asked for a kind, one of another kind. :func:`save_checkpoint` writes to a temporary file in the
same folder and ``os.replace``-s it into place, so a crash never leaves a half-written file.
:func:`inference_weights` picks the weights to predict with (the moving average when the run kept one).
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from equiscale.train.seeding import rng_state, seed_everything, set_rng_state

__all__ = ["FORMAT", "CheckpointHeader", "save_checkpoint", "load_checkpoint", "inference_weights",
           "seed_everything", "rng_state", "set_rng_state"]

FORMAT = 1
"""The checkpoint format this version writes, and the newest it reads."""


def library_version() -> str:
    """The installed equiscale version (``equiscale.__version__``, else the package metadata)."""
    try:
        from equiscale import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover - a partial install
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("equiscale")
        except PackageNotFoundError:
            return "unknown"


@dataclass
class CheckpointHeader:
    """What a checkpoint holds, stored as ``state["header"]`` (a plain dict, see :meth:`as_dict`).

    Args:
        kind: the checkpoint kind an application declares (``"fluid"``, ``"potential"``, ...).
        settings: the run's settings, a dataclass instance (stored via ``dataclasses.asdict``) or a dict.
        statistics: data statistics the model needs (normalisation, reference energies...), or ``{}``.
        dtype: the dtype the model was trained in, ``"float32"`` or ``"float64"`` (a torch.dtype is accepted).
        format: the checkpoint format (:data:`FORMAT` when written by this version).
        library: the equiscale version that wrote it.
    """

    kind: str
    settings: Any = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    dtype: Any = "float32"
    format: int = FORMAT
    library: str = field(default_factory=library_version)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"checkpoint kind must be a non-empty string, got {self.kind!r}")
        if isinstance(self.dtype, torch.dtype):
            self.dtype = str(self.dtype).removeprefix("torch.")

    def as_dict(self) -> dict[str, Any]:
        """``{"kind", "format", "library", "settings", "statistics", "dtype"}`` with the settings as a dict."""
        settings = self.settings
        if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
            settings = dataclasses.asdict(settings)
        return {"kind": self.kind, "format": self.format, "library": self.library, "settings": dict(settings or {}),
                "statistics": dict(self.statistics or {}), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, header: dict[str, Any]) -> CheckpointHeader:
        """The header stored in a checkpoint (``state["header"]``)."""
        return cls(**{f.name: header[f.name] for f in dataclasses.fields(cls) if f.name in header})


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically (temporary file, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_MAGIC = ((b"\x89HDF\r\n\x1a\n", "an HDF5 file"), (b"\x93NUMPY", "a numpy .npy file"), (b"\x1f\x8b", "a gzip file"),
          (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"), (b"\x7fELF", "a program"),
          (b"SQLite format 3", "an SQLite database"))


def _foreign_kind(path: Path, head: bytes) -> str | None:
    """What the file looks like when it is not a torch file (None if it may be one)."""
    if not head:
        return "it is empty"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # a torch file cut short: torch.load says so below
        if any(name.endswith("data.pkl") for name in names):
            return None
        if names and all(name.endswith(".npy") for name in names):
            return "it looks like a numpy .npz file"
        return "it looks like a zip archive"
    if head.startswith(b"\x80"):
        return None  # torch's legacy (pickle) format
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"it looks like {what}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:  # a multi-byte character cut by the 512-byte read is still text
        text = head[:error.start].decode("utf-8") if error.start >= len(head) - 3 else None
    if text is None or "\x00" in text:
        return "it is not a torch file"
    if text.lstrip().startswith(("{", "[")):
        return "it looks like a JSON file"
    return "it looks like a text file"


def _read(path: Path, map_location: Any) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise ValueError(f"checkpoint {path} is not a file")
    with open(path, "rb") as file:
        head = file.read(512)
    foreign = _foreign_kind(path, head)
    if foreign is not None:
        raise ValueError(f"{path} cannot be read: it is not an equiscale checkpoint ({foreign})")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # noqa: BLE001 - one clear message for any damaged file
        first = str(error).split(". ")[0].splitlines()[0] if str(error) else ""  # torch appends advice paragraphs
        raise ValueError(f"{path} cannot be read: the file is truncated or damaged "
                         f"({type(error).__name__}: {first})") from error


def load_checkpoint(path: str | os.PathLike, kind: str | None = None, map_location: Any = "cpu",
                    require_header: bool = True) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, after checking its header.

    Args:
        path: the ``.pt`` file.
        kind: if given, the checkpoint kind expected (``"fluid"``, ``"potential"``...).
        map_location: passed to ``torch.load``.
        require_header: False accepts a dict without ``"header"`` (the Trainer's own files when no
            header was given; ``kind`` must then be None).

    Returns:
        The state dict, with ``state["header"]`` a dict as :meth:`CheckpointHeader.as_dict` made it.

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the problem: not a checkpoint (and what it looks like), truncated
            or damaged, no header, a newer format, or another kind than ``kind``.
    """
    path = Path(path)
    state = _read(path, map_location)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not an equiscale checkpoint (it holds a {type(state).__name__}, not a dict)")
    header = state.get("header")
    if header is None and not require_header and kind is None:
        return state
    if not isinstance(header, dict) or "kind" not in header or "format" not in header:
        raise ValueError(f"{path} is not an equiscale checkpoint: it has no header (written by an older equiscale "
                         f"or another program)")
    written = header["format"]
    if not isinstance(written, int) or written > FORMAT:
        raise ValueError(f"{path} was written by equiscale {header.get('library', '?')}, checkpoint format {written}; "
                         f"this version ({library_version()}) reads up to {FORMAT}")
    if kind is not None and header["kind"] != kind:
        raise ValueError(f"{path} holds a {header['kind']!r} checkpoint, not a {kind!r} one")
    return state


def inference_weights(state: dict[str, Any]) -> dict[str, Any]:
    """The weights to predict with: ``state["ema"]`` when the run kept a weight average, else ``state["model"]``."""
    weights = state.get("ema")
    if weights is None:
        weights = state.get("model")
    if weights is None:
        raise ValueError("checkpoint holds no model weights ('model' or 'ema')")
    return weights
