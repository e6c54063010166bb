"""``/v1/infer``'s duty cap while the camera's pipeline is contended: pure logic, clocks given.

:class:`ContentionWatch` says whether the pipeline cannot keep up with its camera: frames
replaced unread in the camera slot (``dropped_by["stale"]`` grew) since the last look, or a
pipeline that takes every frame as fast as it can (camera policy ``all``: it always has work),
and stays so for ``hold_s`` after the last sign (the cap gives the pipeline its CPU back, the
drops stop, and without a hold the cap would flap off and on every look).

:class:`DutyCap` is a token bucket in seconds of work: ``duty`` seconds of inference per second
(a share of one core), at most ``burst_s`` seconds' worth saved up. A request waits until the
bucket is not in debt, runs, and is charged what its decode and run took.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

LOOK_EVERY_S = 0.25  # the pipeline's counters are read at most this often
HOLD_S = 5.0  # contended for this long after the last stale drop


class ContentionWatch:
    """``stale()`` is the pipeline's stale-drop count now, ``flat_out()`` whether it takes
    every frame as fast as it can; both are read at most every ``every_s``."""

    def __init__(self, stale: Callable[[], int], flat_out: Callable[[], bool], *,
                 hold_s: float = HOLD_S, every_s: float = LOOK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stale = stale
        self.flat_out = flat_out
        self.hold_s = hold_s
        self.every_s = every_s
        self.clock = clock
        self._last_look = -math.inf
        self._last_stale: int | None = None
        self._until = -math.inf
        self._lock = threading.Lock()  # asked by the event loop and by /metrics' scrapes

    def contended(self) -> bool:
        now = self.clock()
        if now - self._last_look < self.every_s:  # looked lately: the answer stands (a
            return now < self._until  # float read whole; asked once per /v1/infer request)
        with self._lock:
            return self._look()

    def _look(self) -> bool:
        now = self.clock()
        if now - self._last_look >= self.every_s:
            self._last_look = now
            stale = self.stale()
            grew = self._last_stale is not None and stale > self._last_stale
            self._last_stale = stale
            if grew or self.flat_out():
                self._until = now + self.hold_s
        return now < self._until


class DutyCap:
    def __init__(self, duty: float, *, burst_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if duty <= 0:
            raise ValueError(f"duty {duty}: must be above 0")
        self.duty = duty
        self.capacity = duty * burst_s
        self.clock = clock
        self._tokens = self.capacity
        self._t = clock()

    def _refill(self) -> float:
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._t) * self.duty)
        self._t = now
        return self._tokens

    def delay(self) -> float:
        """Seconds until the bucket is out of debt (0: a request may run now)."""
        tokens = self._refill()
        return 0.0 if tokens >= 0 else -tokens / self.duty

    def charge(self, seconds: float) -> None:
        self._refill()
        self._tokens -= max(seconds, 0.0)

    def fill(self) -> None:
        """Forget past work (the pipeline was not contended meanwhile)."""
        self._tokens = self.capacity
        self._t = self.clock()
