"""A progress bar for steps bounded by a time budget (training for N seconds)."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from equiscale.train.progress import progress_bar

__all__ = ["timed_bar"]


@contextmanager
def timed_bar(seconds: float, description: str, enabled: bool = True,
              clock: Callable[[], float] = time.perf_counter) -> Iterator[None]:
    """Show a bar filling over ``seconds`` of ``clock`` time while the ``with`` block runs.

    ``clock`` is ``time.perf_counter`` (wall clock) or ``time.process_time`` (this process's CPU
    time, for budgets counted in CPU seconds).
    """
    if not enabled:
        yield
        return
    bar = progress_bar(total=round(float(seconds), 1), desc=description, unit="s", leave=False,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s")
    stop = threading.Event()
    start = clock()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.n = min(round(clock() - start, 1), bar.total)
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()
