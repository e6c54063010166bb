"""Fakes shipped for tests (ours and integrators'): a clock that moves only when told."""

from __future__ import annotations

import threading
import time


class FakeClock:
    """A monotonic clock plus a ``sleep`` that advances it instead of waiting.

    ``sleep`` records every delay in :attr:`sleeps` and yields the CPU for ``real_pause``
    seconds, so threads driven by it make progress without the test waiting real time.
    """

    def __init__(self, start: float = 1000.0, real_pause: float = 0.001) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        self.real_pause = real_pause

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)
        time.sleep(self.real_pause)
