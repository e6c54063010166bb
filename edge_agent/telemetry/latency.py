"""Per-stage latency histograms for a metrics window plus the running total (thread-safe)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from .histogram import Histogram

STAGES = ("age", "preprocess", "invoke", "postprocess", "e2e")


class StageLatencies:
    """One :class:`Histogram` per stage for the current window and since start.

    Writers (the pipeline threads) call :meth:`record`; the heartbeat calls :meth:`roll` once
    per interval to get the finished window and start a new one.
    """

    def __init__(self, stages: Iterable[str] = STAGES) -> None:
        self.stages = tuple(stages)
        self._lock = threading.Lock()
        self._window = {s: Histogram() for s in self.stages}
        self._total = {s: Histogram() for s in self.stages}

    def record(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._window[stage].record(max(seconds, 0.0))

    def record_many(self, values: dict[str, float]) -> None:
        with self._lock:
            window = self._window
            for stage, seconds in values.items():
                window[stage].record(seconds if seconds > 0.0 else 0.0)

    def roll(self) -> dict[str, Histogram]:
        """Return the window's histograms, fold them into the total, start a new window."""
        with self._lock:
            done = self._window
            self._window = {s: Histogram() for s in self.stages}
            for s, h in done.items():
                self._total[s].merge(h)
        return done

    def total(self) -> dict[str, Histogram]:
        """Everything recorded since start (including the open window)."""
        with self._lock:
            out = {s: h.copy() for s, h in self._total.items()}
            for s, h in self._window.items():
                out[s].merge(h)
        return out


def summarize(hists: dict[str, Histogram]) -> dict[str, dict[str, float | int | None]]:
    """``{stage: {count, p50, p95, p99, max, mean}}`` in milliseconds."""
    return {s: h.summary() for s, h in hists.items()}
