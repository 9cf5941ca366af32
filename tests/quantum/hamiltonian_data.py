"""A tiny labelled dataset for the Hamiltonian tests: water, HF/STO-3G, a handful of displaced frames
(through the `data dft` labelling path in this process; about a second)."""
from __future__ import annotations

from pathlib import Path

_CACHE: dict[tuple, Path] = {}


def water_dataset(root: Path, frames: int = 8, basis: str = "sto-3g", xc: str = "hf", seed: int = 0) -> Path:
    """The dataset directory (made once per session and arguments)."""
    key = (frames, basis, xc, seed)
    if key in _CACHE and _CACHE[key].exists():
        return _CACHE[key]
    from equiscale.quantum.geometry import displaced_frames
    from equiscale.quantum.labels import label_dataset

    out = Path(root) / f"water-{basis}-{xc}-{frames}-{seed}.dft"
    info = {"molecule": "water", "basis": basis, "xc": xc, "seed": seed, "displacements": "test",
            "polarizability": True, "field": 1e-3, "settings": {"frames": frames, "seed": seed}}
    label_dataset(out, list(displaced_frames("water", frames, amplitude=0.05, seed=seed)), info, basis=basis, xc=xc,
                  shard_size=4, workers=1, conv_tol=1e-10, progress=False, say=lambda *a: None)
    _CACHE[key] = out
    return out
