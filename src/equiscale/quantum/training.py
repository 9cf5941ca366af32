"""Training a Hamiltonian model with the shared :class:`equiscale.train.Trainer`.

``train_hamiltonian(TrainHamiltonian(data="water.dft", out="runs/h"))`` reads the frames of a DFT
dataset directory (:class:`~equiscale.quantum.data.DFTDataset`), splits off a validation set (or
reads ``valid``), computes the statistics the model normalises with on the training frames
(:func:`model_statistics`), builds the model (``equivariant`` or the augmented ``baseline``) and
trains it with Adam, ``ReduceLROnPlateau``, the Trainer's weight average and atomic checkpoints whose
header is ``CheckpointHeader("hamiltonian", settings, statistics, dtype)``;
:func:`load_hamiltonian` rebuilds the model from one.

The loss is the MSE of the H entries in Hartree^2 (over each molecule's own AOs), plus optional
weighted MSEs of the H error in the true occupied orbitals' basis (:func:`occupied_error`), the energy
per atom, the occupied orbital energies (from the predicted H and the true overlap), the dipole and
the polarizability. With ``guess`` the model learns ``F - G`` for a cheap one-electron ``G``
(:mod:`equiscale.quantum.guess`), computed with PySCF once per frame and kept in side files next to the
shards. Frames stream from the shards (:mod:`equiscale.quantum.stream`): the shards loaded at a time
fit a memory budget (256 MB) whatever the dataset's size, and training shuffles the shards, then the
frames within each window of shards (a dataset within the budget: exactly the in-memory order).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from equiscale.quantum.settings import TrainHamiltonian
from equiscale.quantum.stream import KEYS, ShardFrames, ShardWindowSampler, training_frame  # noqa: F401 (KEYS: old home)
from equiscale.train.metrics import count_parameters

__all__ = ["KIND", "load_frames", "collate", "model_statistics", "build_model", "count_parameters", "hamiltonian_loss",
           "occupied_error",
           "make_step", "train_hamiltonian", "load_hamiltonian"]

KIND = "hamiltonian"
STATISTICS_FRAMES = 200  # frames the block statistics are taken from


def load_frames(path: str | Path, indices: Sequence[int] | None = None, guess: str = "none",
                orbitals: bool = False) -> tuple[list[dict[str, np.ndarray]], dict[int, list[int]]]:
    """The frames ``indices`` (default all) of a DFT dataset directory with the arrays training uses, and its shells.

    Args:
        guess: also the cheap guess ``G`` of each frame (:func:`~equiscale.quantum.guess.frame_guess`,
            the dataset's basis) under ``"guess"`` ``(n, n)``; ``"none"``: not.
        orbitals: also the true orbitals ``C`` of ``F C = S C eps`` (columns, ``C^T S C = 1``) under
            ``"orbitals"`` ``(n, n)``, for the occupied-subspace loss.
    """
    from equiscale.quantum.data import DFTDataset

    dataset = DFTDataset(path)
    indices = range(len(dataset)) if indices is None else indices
    # shard order: each shard is read once
    frames = [training_frame(dataset[int(i)], dataset.basis, guess, orbitals) for i in sorted(indices)]
    return frames, dataset.shells


def collate(frames: Sequence[Mapping[str, np.ndarray]], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A batch of molecules: ``numbers (N,)``, ``positions (N, 3)``, ``batch (N,)``, padded ``fock``/``overlap``
    ``(B, n, n)`` (identity overlap in the padding), ``orbital_energies (B, n)``, ``num_orbitals``,
    ``energy (B,)``, ``dipole (B, 3)``, ``polarizability (B, 3, 3)`` (NaN when a frame has none); ``guess``
    and ``orbitals`` ``(B, n, n)`` (zero padding) when every frame has them."""
    sizes = [f["fock"].shape[-1] for f in frames]
    n = max(sizes)
    extra = {}
    for key in ("guess", "orbitals"):
        if all(key in f for f in frames):
            extra[key] = torch.zeros(len(frames), n, n, dtype=dtype)
            for b, (f, m) in enumerate(zip(frames, sizes)):
                extra[key][b, :m, :m] = torch.as_tensor(f[key], dtype=dtype)
    fock = torch.zeros(len(frames), n, n, dtype=dtype)
    overlap = torch.eye(n, dtype=dtype).repeat(len(frames), 1, 1)
    orbitals = torch.zeros(len(frames), n, dtype=dtype)
    for b, (f, m) in enumerate(zip(frames, sizes)):
        fock[b, :m, :m] = torch.as_tensor(f["fock"], dtype=dtype)
        overlap[b, :m, :m] = torch.as_tensor(f["overlap"], dtype=dtype)
        orbitals[b, :m] = torch.as_tensor(f["orbital_energies"], dtype=dtype)
    nan3 = np.full((3, 3), np.nan)
    return {
        "numbers": torch.as_tensor(np.concatenate([f["numbers"] for f in frames]), dtype=torch.long),
        "positions": torch.as_tensor(np.concatenate([f["positions"] for f in frames]), dtype=dtype),
        "batch": torch.cat([torch.full((len(f["numbers"]),), b, dtype=torch.long) for b, f in enumerate(frames)]),
        "fock": fock, "overlap": overlap, "orbital_energies": orbitals, "num_orbitals": torch.tensor(sizes),
        "energy": torch.tensor([float(f["energy"]) for f in frames], dtype=dtype),
        "dipole": torch.as_tensor(np.stack([f["dipole"] for f in frames]), dtype=dtype),
        "polarizability": torch.as_tensor(np.stack([f.get("polarizability", nan3) for f in frames]), dtype=dtype),
        **extra,
    }


def _atom_offsets(numbers: Sequence[int], shells: Mapping[int, list[int]]) -> list[int]:
    sizes = [sum(2 * l + 1 for l in shells[int(z)]) for z in numbers]
    return [sum(sizes[:a]) for a in range(len(sizes))] + [sum(sizes)]


def model_statistics(frames: Iterable[Mapping[str, np.ndarray]], shells: Mapping[int, list[int]],
                     pair_cutoff: float | None = None, cutoff: float = 5.0) -> dict[str, Any]:
    """What the model normalises with, from training frames (JSON-friendly; keys are strings).

    ``blocks``: per element ``"Z"`` (diagonal) and element pair ``"Za-Zb"`` (``Za <= Zb``) the mean of
    the invariant (``L = 0``) expansion coefficients of ``F`` (of ``F - guess`` when the frames have one)
    and the RMS deviation of each irrep copy (a scale
    that rotations do not change); ``energy``: least-squares reference energy per element and the RMS
    of the per-atom residual; ``polarizability``: per-element share of the mean isotropic part;
    ``avg_num_neighbors`` within ``cutoff``; ``shells``; ``probe``: the first frame's geometry (for checks).
    ``frames`` is read once, in order (a list or a stream); only the first :data:`STATISTICS_FRAMES`
    give block statistics, so later ones need no ``guess``.
    """
    from equiscale.quantum.basis import atom_irreps, shells_to_json
    from equiscale.quantum.expansion import TensorExpansion

    elements = sorted(int(z) for z in shells)
    irreps = {z: atom_irreps(shells[z]) for z in elements}
    samples: dict[str, list[torch.Tensor]] = {}
    heads: dict[str, TensorExpansion] = {}
    neighbors, counts, energies, alpha, first = [], [], [], [], None
    for position, frame in enumerate(frames):
        first = frame if first is None else first
        counts.append([sum(1 for z in frame["numbers"] if int(z) == e) for e in elements])
        energies.append(float(frame["energy"]))
        alpha.append(np.trace(frame["polarizability"]) / 3 if "polarizability" in frame else np.nan)
        if position >= STATISTICS_FRAMES:
            continue
        numbers, positions = [int(z) for z in frame["numbers"]], np.asarray(frame["positions"])
        fock = torch.as_tensor(np.asarray(frame["fock"]) - np.asarray(frame.get("guess", 0.0)), dtype=torch.float64)
        offsets = _atom_offsets(numbers, shells)
        distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        neighbors.append(((distances < cutoff).sum() - len(numbers)) / len(numbers))
        for i, zi in enumerate(numbers):
            for j, zj in enumerate(numbers):
                if zi > zj or (i != j and pair_cutoff is not None and distances[i, j] >= pair_cutoff):
                    continue
                if i != j and zi == zj and i > j:
                    continue
                key = str(zi) if i == j else f"{zi}-{zj}"
                if key not in heads:
                    heads[key] = TensorExpansion(irreps[zi], irreps[zj])
                block = fock[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]]
                blocks = [block, block.T] if zi == zj else [block]  # both orientations of one element
                samples.setdefault(key, []).extend(heads[key].project(b) for b in blocks)
    blocks = {}
    for key, values in samples.items():
        coefficients = torch.stack(values)
        irreps_out = heads[key].irreps_out
        mean = torch.zeros(irreps_out.dim, dtype=torch.float64)
        scale = torch.ones(irreps_out.dim, dtype=torch.float64)
        for (mul, ir), part in zip(irreps_out, irreps_out.slices()):
            values_ir = coefficients[:, part].reshape(len(coefficients), mul, ir.dim)
            if ir.l == 0 and ir.p == 1:
                mean[part] = values_ir.mean(0).flatten()
            centred = values_ir - mean[part].reshape(1, mul, ir.dim)
            rms = centred.square().mean(dim=(0, 2)).sqrt().clamp_min(1e-6)
            scale[part] = rms.repeat_interleave(ir.dim)
        blocks[key] = {"mean": mean.tolist(), "scale": scale.tolist()}
    if first is None:
        raise ValueError("model_statistics needs at least one frame")
    counts, energies, alpha = np.array(counts, dtype=float), np.array(energies), np.array(alpha, dtype=float)
    reference, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    residual = (energies - counts @ reference) / counts.sum(1)
    share = {}
    if np.isfinite(alpha).any():
        good = np.isfinite(alpha)
        share_values, *_ = np.linalg.lstsq(counts[good], alpha[good], rcond=None)
        share = {str(z): float(v) for z, v in zip(elements, share_values)}
    return {
        "shells": shells_to_json(shells),
        "blocks": blocks,
        "energy": {"reference": {str(z): float(v) for z, v in zip(elements, reference)},
                   "scale": float(max(np.sqrt(np.mean(residual ** 2)), 1e-4)), "polarizability": share},
        "avg_num_neighbors": float(max(np.mean(neighbors), 1.0)),
        "probe": {"numbers": [int(z) for z in first["numbers"]], "positions": np.asarray(first["positions"]).tolist()},
        "frames": len(energies),
    }



def _equivariant(settings: Mapping[str, Any], statistics: Mapping[str, Any]) -> nn.Module:
    from equiscale.quantum.basis import shells_from_json
    from equiscale.quantum.model import HamiltonianModel
    from equiscale.quantum.settings import MODEL_KEYS

    energy = dict(statistics["energy"])
    return HamiltonianModel(shells_from_json(statistics["shells"]), avg_num_neighbors=statistics["avg_num_neighbors"],
                            statistics={"blocks": statistics["blocks"], "energy": energy},
                            **{k: settings[k] for k in MODEL_KEYS if k in settings})


def _baseline_width(settings: Mapping[str, Any], statistics: Mapping[str, Any]) -> int:
    """The baseline width whose parameter count is closest to the equivariant model's."""
    from equiscale.quantum.baseline import BaselineHamiltonian
    from equiscale.quantum.basis import shells_from_json

    target = count_parameters(_equivariant(settings, statistics))
    shells = shells_from_json(statistics["shells"])
    best = min(range(8, 257, 4), key=lambda w: abs(count_parameters(BaselineHamiltonian(shells, width=w,
                                                                                         layers=settings["layers"])) - target))
    return best


def build_model(settings: Mapping[str, Any], statistics: Mapping[str, Any]) -> nn.Module:
    """The (float32) model of a run's settings (a dict, e.g. a checkpoint header's) and statistics."""
    if settings.get("model", "equivariant") == "equivariant":
        return _equivariant(settings, statistics)
    from equiscale.quantum.baseline import BaselineHamiltonian
    from equiscale.quantum.basis import shells_from_json

    width = settings.get("width") or statistics.get("baseline_width") or _baseline_width(settings, statistics)
    return BaselineHamiltonian(shells_from_json(statistics["shells"]), width=width, layers=settings["layers"],
                               cutoff=settings["cutoff"], pair_cutoff=settings.get("pair_cutoff"),
                               guess=settings.get("guess", "none"),
                               statistics={"blocks": statistics["blocks"], "energy": statistics["energy"]})


def _mask(num_orbitals: torch.Tensor, n: int) -> torch.Tensor:
    valid = torch.arange(n, device=num_orbitals.device)[None] < num_orbitals[:, None]
    return valid[:, :, None] & valid[:, None, :]


def hamiltonian_loss(prediction: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     weights: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss and its metrics (``h_mae_uha``: MAE of the H entries in micro-Hartree).

    ``weights``: ``hamiltonian``, ``energy``, ``orbital``, ``dipole``, ``polarizability``, ``occupied``
    (:func:`occupied_error`; the batch needs ``orbitals``).
    """
    mask = _mask(batch["num_orbitals"], batch["fock"].shape[-1])
    error = (prediction["hamiltonian"] - batch["fock"])[mask]
    loss = weights.get("hamiltonian", 1.0) * error.square().mean()
    metrics = {"h_mae_uha": float(error.detach().abs().mean()) * 1e6}
    atoms = torch.bincount(batch["batch"], minlength=batch["energy"].shape[0]).to(batch["energy"].dtype)
    if weights.get("energy", 0) > 0:
        e = (prediction["energy"] - batch["energy"]) / atoms
        loss = loss + weights["energy"] * e.square().mean()
        metrics["energy_mae_per_atom"] = float(e.detach().abs().mean())
    if weights.get("dipole", 0) > 0:
        d = prediction["dipole"] - batch["dipole"]
        loss = loss + weights["dipole"] * d.square().mean()
        metrics["dipole_mae"] = float(d.detach().abs().mean())
    if weights.get("polarizability", 0) > 0 and bool(torch.isfinite(batch["polarizability"]).all()):
        p = prediction["polarizability"] - batch["polarizability"]
        loss = loss + weights["polarizability"] * p.square().mean()
        metrics["polarizability_mae"] = float(p.detach().abs().mean())
    if weights.get("occupied", 0) > 0:
        o = occupied_error(prediction["hamiltonian"], batch)
        loss = loss + weights["occupied"] * o.square().mean()
        metrics["occupied_mae_uha"] = float(o.detach().abs().mean()) * 1e6
    if weights.get("orbital", 0) > 0:
        from equiscale.quantum.properties import occupied_count, solve_fock

        errors = []
        for b, n in enumerate(batch["num_orbitals"].tolist()):
            occupied = occupied_count(batch["numbers"][batch["batch"] == b])
            eps, _ = solve_fock(prediction["hamiltonian"][b, :n, :n], batch["overlap"][b, :n, :n])
            errors.append(eps[:occupied] - batch["orbital_energies"][b, :occupied])
        o = torch.cat(errors)
        loss = loss + weights["orbital"] * o.square().mean()
        metrics["orbital_mae"] = float(o.detach().abs().mean())
    return loss, metrics


def occupied_error(hamiltonian: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The H error in the true orbital basis where it matters, all molecules' entries concatenated (Hartree).

    With ``C`` the true orbitals (``batch["orbitals"]``, ``C^T S C = 1``) and ``E = H - F``, the rows of
    ``C^T E C`` that belong to the ``k`` occupied orbitals: the occupied-occupied entries (their
    diagonal is the first-order orbital-energy error) as they are, the occupied-virtual ones times
    ``gap / (eps_a - eps_i)`` (the first-order rotation of the occupied space, i.e. the density error,
    in units of the HOMO-LUMO gap). An AO error along a near-null direction of ``S`` is amplified by
    ``1 / s_min`` here (ethanol in def2-SVP: ``s_min`` 0.003), which an MSE of the AO entries does not see.
    """
    from equiscale.quantum.properties import occupied_count

    errors = []
    for b, n in enumerate(batch["num_orbitals"].tolist()):
        k = occupied_count(batch["numbers"][batch["batch"] == b])
        c = batch["orbitals"][b, :n, :n]
        eps = batch["orbital_energies"][b, :n]
        rows = c[:, :k].T @ (hamiltonian[b, :n, :n] - batch["fock"][b, :n, :n]) @ c
        if k < n:
            gap = eps[k] - eps[k - 1]
            weight = torch.ones_like(rows)
            weight[:, k:] = gap / (eps[None, k:] - eps[:k, None])
            rows = rows * weight
        errors.append(rows.flatten())
    return torch.cat(errors)


def make_step(weights: Mapping[str, float], shells: Mapping[int, list[int]] | None = None,
              seed: int = 0) -> Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]:
    """The Trainer's step; with ``shells`` (the baseline) training batches are randomly rotated and
    reflected first (:func:`~equiscale.quantum.baseline.augment`), validation batches never."""
    generator = torch.Generator().manual_seed(seed)

    def step(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if shells is not None and model.training:
            from equiscale.quantum.baseline import augment

            batch = augment(batch, shells, generator)
        return hamiltonian_loss(model(batch), batch, weights)

    return step


def _split(settings: TrainHamiltonian) -> tuple[ShardFrames, ShardFrames | None, dict[int, list[int]]]:
    """The training and validation frames (streamed from the shards) and the basis description."""
    from equiscale.quantum.data import DFTDataset

    total = len(DFTDataset(settings.data))
    if total == 0:
        raise ValueError(f"{settings.data} holds no frames")
    order = np.random.default_rng(settings.seed).permutation(total)
    valid = None
    extras = {"guess": settings.guess, "orbitals": settings.occupied_weight > 0}
    if settings.valid:
        valid = ShardFrames(settings.valid, **extras)
        train_index = order
    elif settings.valid_fraction > 0 and total >= 2:
        held = max(1, round(settings.valid_fraction * total))
        train_index, valid_index = order[held:], order[:held]
        valid = ShardFrames(settings.data, valid_index, **extras)
    else:
        train_index = order
    if settings.train_frames is not None:
        train_index = train_index[: settings.train_frames]
    train = ShardFrames(settings.data, train_index, **extras)
    if valid is not None and valid.shells != train.shells:
        raise ValueError(f"{settings.valid} has another basis description ({valid.shells}) than {settings.data} "
                         f"({train.shells})")
    return train, valid, train.shells


def train_hamiltonian(settings: TrainHamiltonian, resume: bool | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) a Hamiltonian model; returns the Trainer's summary plus
    ``parameters`` and ``is_main`` (whether this process is rank 0: under torchrun every process trains
    its share of each batch and rank 0 writes). ``progress=False`` prints nothing (``settings.quiet``
    drops only the bars).

    Raises:
        FileNotFoundError, ValueError: a missing or unreadable dataset, an ``out`` holding a run (without resume).
    """
    from torch.utils.data import DataLoader

    from equiscale.train import (CheckpointHeader, Trainer, cleanup, make_loader, seed_everything, setup_distributed,
                                 trainer_config, wrap_ddp)
    from equiscale.train.distributed import world_size

    resume = settings.resume if resume is None else resume
    if not settings.data:
        raise ValueError("no training data: pass --data DIR (or set 'data:' in the --config file)")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    seed_everything(settings.seed)
    dtype = getattr(torch, settings.dtype)
    train_frames, valid_frames, shells = _split(settings)  # with the guess and orbitals the settings ask for
    stream = train_frames.frames(STATISTICS_FRAMES) if isinstance(train_frames, ShardFrames) else train_frames
    statistics = model_statistics(stream, shells, settings.pair_cutoff, settings.cutoff)  # one pass
    options = dict(vars(settings))
    if settings.model == "baseline" and settings.width is None:
        statistics["baseline_width"] = _baseline_width(options, statistics)
    rank, _, device = setup_distributed(settings.device)  # under torchrun: one process group, DDP, shared data
    model = build_model(options, statistics).to(device=device, dtype=dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=settings.lr_factor,
                                                           patience=settings.lr_patience, min_lr=settings.lr * 1e-3)

    def loader(frames: ShardFrames | Sequence[dict] | None, shuffle: bool):
        if frames is None:
            return None
        if shuffle and world_size() == 1 and isinstance(frames, ShardFrames):  # shard-aware; under torchrun each rank's share is read through the cache
            return DataLoader(frames, batch_size=settings.batch_size, sampler=ShardWindowSampler(frames),
                              collate_fn=lambda items: collate(items, dtype))
        return make_loader(frames, settings.batch_size, shuffle=shuffle, seed=settings.seed,
                           collate_fn=lambda items: collate(items, dtype))

    weights = {"hamiltonian": settings.hamiltonian_weight, "energy": settings.energy_weight,
               "orbital": settings.orbital_weight, "dipole": settings.dipole_weight,
               "polarizability": settings.polarizability_weight, "occupied": settings.occupied_weight}
    step = make_step(weights, shells if settings.model == "baseline" else None, settings.seed)
    config = trainer_config(settings, patience=settings.patience, grad_clip=settings.grad_clip,
                            progress_bars=progress and not settings.quiet, log_epochs=progress)
    # property heads without a loss weight get no gradient: DDP must not wait for them
    trained = wrap_ddp(model, device, find_unused_parameters=True)
    trainer = Trainer(trained, optimizer, step, loader(train_frames, True), settings.out, config,
                      val_data=loader(valid_frames, False), scheduler=scheduler, device=device,
                      header=CheckpointHeader(KIND, settings, statistics, settings.dtype))
    if trainer.is_main and progress and not settings.quiet:
        print(f"training the {settings.model} model ({count_parameters(model)} parameters) on {len(train_frames)} "
              f"frames, validating on {len(valid_frames or [])}; writing {Path(settings.out)}", flush=True)
    try:
        summary = trainer.fit(resume=resume)
    finally:
        cleanup()
    summary["parameters"] = count_parameters(model)
    summary["is_main"] = rank == 0
    return summary


def load_hamiltonian(path: str | Path, dtype: str | torch.dtype | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a ``hamiltonian`` checkpoint (or run directory) with its inference weights, in
    ``dtype`` (default: the training dtype), in eval mode; and the checkpoint's state."""
    from equiscale.check import checkpoint_file
    from equiscale.train import inference_weights, load_checkpoint

    state = load_checkpoint(checkpoint_file(path), kind=KIND)
    header = state["header"]
    model = build_model(header["settings"], header["statistics"])
    model.load_state_dict(inference_weights(state))
    dtype = dtype or header.get("dtype", "float32")
    model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype).eval()
    return model, state
