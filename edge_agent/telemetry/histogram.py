"""Mergeable latency histogram with bounded relative error (pure logic, no threads).

Values go into logarithmic buckets: bucket ``i`` holds values in ``(g**(i-1), g**i]`` with
``g = (1 + a) / (1 - a)``; a quantile is reported as the bucket's centre ``2 g**i / (g + 1)``,
which is within ``a`` (relative) of every value in that bucket. With ``a = 0.005`` the p50/p95/
p99 of any sample are within 0.5 % of the exact order statistic (numpy ``method="lower"``).
``min``/``max``/``sum``/``count`` are exact. Two histograms with the same accuracy merge by adding
their bucket counts, so per-worker or per-window histograms combine without losing accuracy.
The number of buckets is bounded: values are clamped to ``[min_value, max_value]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence


class Histogram:
    """Bounded-error quantile sketch for non-negative values (e.g. seconds)."""

    def __init__(
        self, relative_accuracy: float = 0.005, min_value: float = 1e-7, max_value: float = 1e5
    ) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be in (0, 1)")
        if not 0 < min_value < max_value:
            raise ValueError("need 0 < min_value < max_value")
        self.relative_accuracy = relative_accuracy
        self.min_value = min_value
        self.max_value = max_value
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # -- recording ---------------------------------------------------------------------------
    def _key(self, value: float) -> int:
        v = min(max(value, self.min_value), self.max_value)
        return math.ceil(math.log(v) / self._log_gamma)

    def record(self, value: float, count: int = 1) -> None:
        # called for every stage of every frame: _key inlined, no min()/max() calls
        if not 0 <= value < math.inf:  # NaN fails both comparisons
            raise ValueError(f"histogram value must be finite and >= 0, got {value!r}")
        v = self.min_value if value < self.min_value else (
            self.max_value if value > self.max_value else value)
        k = math.ceil(math.log(v) / self._log_gamma)
        buckets = self._buckets
        buckets[k] = buckets.get(k, 0) + count
        self.count += count
        self.sum += value * count
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts into this histogram (same accuracy and range required)."""
        if (other.relative_accuracy, other.min_value, other.max_value) != (
            self.relative_accuracy,
            self.min_value,
            self.max_value,
        ):
            raise ValueError("cannot merge histograms with different accuracy or range")
        for k, c in other._buckets.items():
            self._buckets[k] = self._buckets.get(k, 0) + c
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> Histogram:
        h = Histogram(self.relative_accuracy, self.min_value, self.max_value)
        h.merge(self)
        return h

    def clear(self) -> None:
        self._buckets.clear()
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # -- reading -----------------------------------------------------------------------------
    def quantile(self, q: float) -> float | None:
        """The value at rank ``floor(q * (count - 1))`` (numpy ``method="lower"``), or None."""
        if not 0 <= q <= 1:
            raise ValueError("q must be in [0, 1]")
        if self.count == 0:
            return None
        rank = math.floor(q * (self.count - 1))
        if rank == 0:
            return self.min
        if rank == self.count - 1:
            return self.max
        seen = 0
        for k in sorted(self._buckets):
            seen += self._buckets[k]
            if seen > rank:
                centre = 2 * self._gamma**k / (self._gamma + 1)
                return min(max(centre, self.min), self.max)
        return self.max  # pragma: no cover - counts always add up

    def counts_at_most(self, bounds: Sequence[float]) -> list[int]:
        """How many values are ``<= b`` for each of the ascending ``bounds`` (Prometheus'
        cumulative ``le`` buckets). Exact except for values within the relative accuracy of a
        bound: the one bucket that straddles it counts as below when its centre is."""
        items = sorted(self._buckets.items())
        out: list[int] = []
        i = seen = 0
        for b in bounds:
            if self.count and b >= self.max:
                out.append(self.count)
                continue
            kb = self._key(b)  # the bucket that holds b: (g**(kb-1), g**kb]
            centre = 2 * self._gamma**kb / (self._gamma + 1)
            while i < len(items) and (items[i][0] < kb or (items[i][0] == kb and centre <= b)):
                seen += items[i][1]
                i += 1
            out.append(seen)
        return out

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def summary(self, scale: float = 1000.0, digits: int = 3) -> dict[str, float | int | None]:
        """``count``, ``p50``, ``p95``, ``p99``, ``max``, ``mean`` (times ``scale``: s -> ms)."""

        def s(v: float | None) -> float | None:
            return None if v is None else round(v * scale, digits)

        return {
            "count": self.count,
            "p50": s(self.quantile(0.50)),
            "p95": s(self.quantile(0.95)),
            "p99": s(self.quantile(0.99)),
            "max": s(self.max if self.count else None),
            "mean": s(self.mean),
        }

    def to_dict(self) -> dict[str, object]:
        """Plain data (for sending a histogram to another process); see :meth:`from_dict`."""
        return {
            "relative_accuracy": self.relative_accuracy,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "buckets": {str(k): c for k, c in sorted(self._buckets.items())},
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Histogram:
        h = cls(
            float(data["relative_accuracy"]),  # type: ignore[arg-type]
            float(data["min_value"]),  # type: ignore[arg-type]
            float(data["max_value"]),  # type: ignore[arg-type]
        )
        buckets = data.get("buckets") or {}
        assert isinstance(buckets, Mapping)
        h._buckets = {int(k): int(v) for k, v in buckets.items()}
        h.count = int(data["count"])  # type: ignore[call-overload]
        h.sum = float(data["sum"])  # type: ignore[arg-type]
        if h.count:
            h.min = float(data["min"])  # type: ignore[arg-type]
            h.max = float(data["max"])  # type: ignore[arg-type]
        return h
