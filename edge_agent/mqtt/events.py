"""Inference results -> ``events`` records: a rate limit and a size cap. Pure: no I/O."""

from __future__ import annotations

import json
from typing import Any


class TokenBucket:
    """At most ``rate`` events per second on average, bursts up to ``burst``.

    The clock is passed in (``now`` in seconds), so tests need no sleeps.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds from the last :meth:`allow` until a token is there again (0: now)."""
        return max(0.0, (1.0 - self._tokens) / self.rate)


def _size(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":"), default=str).encode())


def cap_event(body: dict[str, Any], max_bytes: int, reserve: int = 96) -> dict[str, Any] | None:
    """Shrink an event body to fit ``max_bytes`` (minus ``reserve`` for seq/ts/device).

    Lists (detections, classes) are cut from the end and ``truncated`` plus the original
    lengths (``<key>_total``) are recorded; returns None if even the empty shape does not fit.
    """
    limit = max_bytes - reserve
    if _size(body) <= limit:
        return body
    out = dict(body)
    out["truncated"] = True
    lists = [k for k, v in out.items() if isinstance(v, list)]
    for k in lists:
        out[f"{k}_total"] = len(body[k])
    for k in lists:
        items = list(body[k])
        while items and _size({**out, k: items}) > limit:
            items = items[: len(items) // 2]
        out[k] = items
        if _size(out) <= limit:
            return out
    return out if _size(out) <= limit else None
