"""A committee of trained models as one module: the mean prediction and the spread of the members.

    committee = load_committee("runs/cu", lambda member: load_potential(member / "best.pt"))
    mean = committee(batch)                 # the members' mean, same structure as one member's output
    mean, spread = committee.predict(batch)  # and the standard deviation across members

Outputs may be tensors or (nested) dicts, lists and tuples of tensors; ``None`` entries stay None.
The spread is the sample standard deviation over members (``N - 1`` in the denominator); a fitted
calibration scale (:mod:`equiscale.uncertainty.calibration`) turns it into an error estimate.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from equiscale.uncertainty.files import read_committee

__all__ = ["Committee", "committee_members", "load_committee", "reduce_outputs"]


def reduce_outputs(outputs: Sequence[Any], reduce: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Stack the members' outputs (same structure each) along a new first axis and apply ``reduce`` to it.

    Args:
        outputs: one output per member: a tensor, None, or a dict/list/tuple of those.
        reduce: ``(members, ...) -> (...)``, e.g. ``lambda x: x.mean(0)``.
    """
    first = outputs[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return reduce(torch.stack(list(outputs)))
    if isinstance(first, dict):
        return {key: reduce_outputs([o[key] for o in outputs], reduce) for key in first}
    if isinstance(first, (list, tuple)):
        return type(first)(reduce_outputs([o[i] for o in outputs], reduce) for i in range(len(first)))
    raise TypeError(f"cannot combine member outputs of type {type(first).__name__}")


def _std(stacked: torch.Tensor) -> torch.Tensor:
    return stacked.std(0, unbiased=True) if stacked.shape[0] > 1 else torch.zeros_like(stacked[0])


class Committee(nn.Module):
    """N models of the same kind evaluated on the same input.

    Args:
        members: the trained models (their outputs must have one structure).

    Attributes:
        members: an ``nn.ModuleList``; ``committee.to(dtype)`` moves them all.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 1:
            raise ValueError("a committee needs at least one member")
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def outputs(self, *args: Any, **kwargs: Any) -> list[Any]:
        """Each member's output for the same arguments."""
        return [member(*args, **kwargs) for member in self.members]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The mean of the members' outputs (the committee's prediction)."""
        return reduce_outputs(self.outputs(*args, **kwargs), lambda x: x.mean(0))

    def predict(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """(mean, standard deviation) over the members, each with the structure of one output."""
        outputs = self.outputs(*args, **kwargs)
        return reduce_outputs(outputs, lambda x: x.mean(0)), reduce_outputs(outputs, _std)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            members = self.__dict__.get("_modules", {}).get("members")
            if name.startswith("_") or members is None:
                raise
            return getattr(members[0], name)  # what the members share (e.g. a potential's cutoff)


def committee_members(path: str | os.PathLike, loader: Callable[[Path], nn.Module]) -> list[nn.Module]:
    """The members of the committee trained into ``path``, each loaded by ``loader`` (see :func:`load_committee`).

    For an application's own :class:`Committee` subclass: ``FluidCommittee(committee_members(path, loader))``.

    Raises:
        FileNotFoundError: ``path`` is not a committee, or a member has no checkpoint yet.
        ValueError: ``committee.json`` is unreadable, or a member's loader refused its checkpoint.
    """
    data = read_committee(path)
    members = []
    for name in data["members"]:
        folder = Path(path) / name
        if not folder.is_dir():
            raise FileNotFoundError(f"{path}: committee member {name} was never trained (resume the run with --resume)")
        members.append(loader(folder))
    return members


def load_committee(path: str | os.PathLike, loader: Callable[[Path], nn.Module]) -> Committee:
    """The committee trained into ``path`` with ``--ensemble N``, each member loaded by the application.

    Args:
        path: the run directory holding ``committee.json``.
        loader: the application's own loader, called with each member's run directory
            (``path/member-K``), e.g. ``lambda d: load_potential(d / "best.pt")``.

    Raises:
        FileNotFoundError: ``path`` is not a committee, or a member has no checkpoint yet.
        ValueError: ``committee.json`` is unreadable, or a member's loader refused its checkpoint.
    """
    return Committee(committee_members(path, loader))
