"""The thread that samples a server's memory and CPU time (a process group's from /proc, a
container's from the engine) until the server is stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable

# Often enough to catch a memory peak of a load run, rarely enough to cost next to nothing.
INTERVAL_S = 0.25


class Sampler:
    """Calls `sample` every INTERVAL_S on a daemon thread, from its creation until `stop`."""

    def __init__(self, sample: Callable[[], None], name: str) -> None:
        self._sample = sample
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """End the thread, then take a last sample: before the server (and the numbers it
        has used) is gone."""
        self._stopping.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stopping.wait(INTERVAL_S):
            self._sample()
