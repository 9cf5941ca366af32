"""Several processes with ``torch.distributed``: the few calls an application needs.

Under ``torchrun --nproc_per_node K script ...`` (which sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``) every process runs the same script::

    rank, world, device = setup_distributed(settings.device)   # joins the group when world > 1
    model = wrap_ddp(model.to(device), device)                  # DistributedDataParallel when world > 1
    loader = make_loader(dataset, batch_size, shuffle=True, seed=settings.seed, collate_fn=...)
    try:
        Trainer(model, ...).fit()                               # rank 0 writes files and prints
    finally:
        cleanup()

The backend is gloo on CPU and nccl on GPU; each process takes the GPU of its ``LOCAL_RANK``. With one
process (plain ``python``), everything here is a no-op and the loader shuffles from torch's global
generator, which the Trainer seeds and restores on resume.
"""
from __future__ import annotations

import atexit
import os
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = ["setup_distributed", "wrap_ddp", "make_sampler", "make_loader", "cleanup", "is_distributed", "world_size",
           "unwrap"]


def is_distributed() -> bool:
    """True when this process belongs to an initialised process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return torch.distributed.get_world_size() if is_distributed() else 1


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel/DataParallel wrapper (else ``model`` itself)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def setup_distributed(device: str = "auto") -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), else run alone.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.

    Returns:
        ``(rank, world_size, device)``: the device is ``cuda:LOCAL_RANK`` on GPU, else the CPU.

    Raises:
        ValueError: an unknown device, or ``"cuda"`` without CUDA.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but CUDA is not available")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    if world > 1 and not is_distributed():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world, torch.device("cuda", local) if use_cuda else torch.device("cpu")


def is_main() -> bool:
    """True on the process that writes files and prints: rank 0 under torchrun, or the only one."""
    return not is_distributed() or torch.distributed.get_rank() == 0


def on_main(action: Callable[[], Any]) -> None:
    """Run ``action`` (writing files) on rank 0 alone while the other processes wait for it.

    Raises on every process when it failed on rank 0 (its error there, a RuntimeError naming it
    elsewhere), so that no process waits for files that will not come.
    """
    if not is_distributed():
        action()
        return
    error: BaseException | None = None
    if is_main():
        try:
            action()
        except Exception as caught:  # re-raised below, after the others know
            error = caught
    message = [None if error is None else f"{type(error).__name__}: {error}"]
    torch.distributed.broadcast_object_list(message, src=0)
    if error is not None:
        raise error
    if message[0] is not None:
        raise RuntimeError(f"rank 0 failed: {message[0]}")


def collective_device() -> torch.device:
    """Where a tensor must live for a collective of this process group: the GPU under nccl, else the CPU."""
    if is_distributed() and torch.distributed.get_backend() == "nccl":  # nccl reduces GPU tensors only
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def wrap_ddp(model: nn.Module, device: torch.device | str, **options: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` in a process group of several processes, else ``model``.

    ``model`` should already be on ``device``; ``options`` go to DistributedDataParallel
    (e.g. ``find_unused_parameters=True``).
    """
    if world_size() == 1:
        return model
    device = torch.device(device)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, **options)


def make_sampler(dataset: Dataset, shuffle: bool, seed: int = 0, drop_last: bool = False) -> Sampler | None:
    """A ``DistributedSampler`` (this process's share, reshuffled each epoch by the Trainer's
    ``set_epoch`` from ``seed``) when there are several processes, else None."""
    if world_size() == 1:
        return None
    return DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                collate_fn: Callable | None = None, drop_last: bool = False, **options: Any) -> DataLoader:
    """A DataLoader over ``dataset``; with several processes each gets its share (:func:`make_sampler`).

    ``batch_size`` is per process: K processes together take K batches per step. With one process,
    shuffling draws from torch's global generator (``seed`` unused). ``options`` go to DataLoader.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sampler = make_sampler(dataset, shuffle, seed, drop_last)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
                      collate_fn=collate_fn, drop_last=drop_last, **options)


_LAST_COLLECTIVE: list[Any] = []
atexit.register(_LAST_COLLECTIVE.clear)


def cleanup() -> None:
    """Wait for every process, then leave the process group (no-op with one process)."""
    if not is_distributed():
        return
    work = torch.distributed.barrier(async_op=True)
    work.wait()
    # Gloo frees a finished collective in its worker thread, which takes the GIL to do so. If a
    # DistributedDataParallel freed after this call drops the last reference to the group while this
    # thread holds the GIL, the group's destructor waits for that worker forever (a rare hang at exit,
    # pytorch/pytorch#56297). Keeping the last collective alive until exit makes this thread free it
    # instead; the worker freed the earlier ones before it ran this one.
    _LAST_COLLECTIVE[:] = [work]
    torch.distributed.destroy_process_group()
