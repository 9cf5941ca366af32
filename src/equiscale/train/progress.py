"""Progress bars: tqdm when it is installed, a silent stand-in otherwise (or when disabled)."""
from __future__ import annotations

from typing import Any, Iterable


class _Silent:
    """Enough of tqdm's interface to be a drop-in: iterate, update, set_postfix, close."""

    def __init__(self, iterable: Iterable | None = None) -> None:
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, enabled: bool = True, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` if ``enabled`` and tqdm is installed, else a silent stand-in."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return tqdm(iterable, **kwargs)
    return _Silent(iterable)


def write_line(line: str) -> None:
    """Print a line without breaking an active tqdm bar."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        print(line, flush=True)
    else:
        tqdm.write(line)
