"""What an application declares, and how the command line, ``equiscale check`` and the demo find it.

An application (continuum, atomistic, fields, ...) is a package with a light module ``app.py``
that holds one :class:`Application`: its commands (``equiscale data|train|evaluate TASK``, each
with one settings dataclass and a run function), the checkpoint kinds its training writes with the
equivariance checks of those models, and its section of ``equiscale demo``. The package announces
it as a Python entry point in the group ``equiscale.applications``::

    [project.entry-points."equiscale.applications"]
    continuum = "equiscale.continuum.app:APPLICATION"

so another installed package can add an application the same way. Functions are named as
``"module:function"`` strings and imported only when used, so that ``equiscale --help`` does not
import torch or any application's heavy code.
"""
from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Sequence

__all__ = ["Application", "Command", "CheckpointKind", "DemoSection", "VERBS", "ENTRY_POINT_GROUP", "discover",
           "load_object", "find_checkpoint_kind"]

ENTRY_POINT_GROUP = "equiscale.applications"

VERBS = {
    "data": "generate reference data",
    "train": "train a model",
    "evaluate": "evaluate a trained model",
    "learn": "learn a model actively: train, simulate, label where uncertain, repeat",
    "export": "export a trained model for plain PyTorch or C++ (torch.export, AOTInductor)",
}


def load_object(reference: str) -> Any:
    """The object named by ``"package.module:attribute"``."""
    module, _, attribute = reference.partition(":")
    if not module or not attribute:
        raise ValueError(f"{reference!r} is not of the form 'package.module:name'")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Command:
    """``equiscale VERB TASK``: its settings dataclass and the function that runs it.

    Attributes:
        verb: ``"data"``, ``"train"``, ``"evaluate"`` or ``"learn"`` (``""`` for the core's own commands).
        task: the task's name under the verb (``"fluid"`` -> ``equiscale train fluid``).
        settings: a :class:`equiscale.settings.Settings` dataclass; its fields are the options.
        run: ``"module:function"``; ``function(settings) -> int`` (the exit status).
        help: one line for the verb's list of tasks.
        description: the paragraph of ``--help``.
        epilog: text printed as written after the options in ``--help`` (e.g. an example ``--config`` file).
    """

    verb: str
    task: str
    settings: type
    run: str
    help: str
    description: str = ""
    epilog: str = ""



@dataclass(frozen=True)
class CheckpointKind:
    """A kind of checkpoint an application's training writes (the ``kind`` of its header).

    Attributes:
        kind: the name stored in the checkpoint header, e.g. ``"fluid"``.
        checks: ``"module:function"``; ``function(file, state, options) -> (description, checks)``
            with ``options`` a :class:`equiscale.check.CheckOptions` and ``checks`` a list of
            :class:`equiscale.check.EquivarianceCheck`.
        describe: what such a checkpoint is, for messages (``"a fluid surrogate (equiscale train fluid)"``).
    """

    kind: str
    checks: str
    describe: str = ""


@dataclass(frozen=True)
class DemoSection:
    """An application's section of ``equiscale demo``.

    Attributes:
        name: the section's name on the command line (``--sections NAME``).
        function: ``"module:function"``; ``function(ctx: DemoContext) -> SectionResult``.
        order: sections run in increasing order (the core's symmetry check always runs last).
    """

    name: str
    function: str
    order: int = 100


@dataclass(frozen=True)
class Application:
    """Everything an application contributes, declared in one place (its ``app.py``).

    ``demo`` is its section of ``equiscale demo``, or a tuple of sections when it has several.
    """

    name: str
    description: str
    commands: tuple[Command, ...] = ()
    checkpoints: tuple[CheckpointKind, ...] = ()
    demo: DemoSection | tuple[DemoSection, ...] | None = None
    extras: tuple[tuple[str, str], ...] = ()  # (optional module, the extra that installs it), for error messages

    @property
    def demo_sections(self) -> tuple[DemoSection, ...]:
        """The application's demo sections (none, one or several), as a tuple."""
        if self.demo is None:
            return ()
        return self.demo if isinstance(self.demo, tuple) else (self.demo,)


def discover(extra: Sequence[Application] = ()) -> list[Application]:
    """The installed applications (entry points of :data:`ENTRY_POINT_GROUP`) plus ``extra``, by name.

    An entry point whose module cannot be imported is skipped with a warning that names it.

    Raises:
        ValueError: an entry point does not hold an :class:`Application`, or two applications
            declare the same name, command, checkpoint kind or demo section.
    """
    found: list[Application] = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            application = entry.load()
        except ImportError as error:  # one broken plugin must not take the whole command line down
            warnings.warn(f"equiscale: application {entry.name} ({entry.value}) could not be loaded: {error}; "
                          f"its commands are missing", stacklevel=2)
            continue
        if not isinstance(application, Application):
            raise ValueError(f"entry point {entry.name} = {entry.value} is not an equiscale Application")
        found.append(application)
    found.extend(extra)
    _check_unique(found)
    return sorted(found, key=lambda a: a.name)


def _check_unique(applications: Sequence[Application]) -> None:
    seen: dict[tuple, str] = {}
    for application in applications:
        for command in application.commands:
            if command.verb not in VERBS:
                raise ValueError(f"application {application.name}: command verb must be one of {', '.join(VERBS)}, "
                                 f"got {command.verb!r}")
        keys = [("application", application.name)]
        keys += [("command", c.verb, c.task) for c in application.commands]
        keys += [("checkpoint kind", k.kind) for k in application.checkpoints]
        keys += [("demo section", d.name) for d in application.demo_sections]
        for key in keys:
            if key in seen and seen[key] != application.name:
                raise ValueError(f"{key[0]} {' '.join(key[1:])!r} is declared by both {seen[key]} and {application.name}")
            seen[key] = application.name


def find_checkpoint_kind(kind: str, applications: Sequence[Application]) -> CheckpointKind:
    """The declaration of checkpoint ``kind``; ValueError naming the known kinds otherwise."""
    kinds = {k.kind: k for a in applications for k in a.checkpoints}
    if kind not in kinds:
        raise ValueError(f"no installed application knows checkpoints of kind {kind!r} "
                         f"(known: {', '.join(sorted(kinds)) or 'none'})")
    return kinds[kind]


def load_function(reference: str) -> Callable[..., Any]:
    """Like :func:`load_object`, for functions (a clear error when the name is not callable)."""
    function = load_object(reference)
    if not callable(function):
        raise ValueError(f"{reference} is not a function")
    return function
