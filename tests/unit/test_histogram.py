"""Histogram quantiles against numpy's exact order statistics; merging; serialisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.telemetry import Histogram

latencies = st.lists(
    st.floats(min_value=1e-6, max_value=50.0, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=400,
)


def _check(h: Histogram, values: list[float]) -> None:
    arr = np.asarray(values)
    for q in (0.5, 0.95, 0.99):
        exact = float(np.percentile(arr, q * 100, method="lower"))
        got = h.quantile(q)
        assert got is not None
        assert abs(got - exact) <= 0.01 * exact, (q, got, exact)
    assert h.max == pytest.approx(float(arr.max()))
    assert h.count == len(values)


class TestHistogram:
    @settings(max_examples=150, deadline=None)
    @given(latencies)
    def test_quantiles_within_one_percent(self, values: list[float]) -> None:
        h = Histogram()
        h.extend(values)
        _check(h, values)

    @settings(max_examples=80, deadline=None)
    @given(latencies, latencies)
    def test_merge_equals_one_histogram_of_both(self, a: list[float], b: list[float]) -> None:
        ha, hb = Histogram(), Histogram()
        ha.extend(a)
        hb.extend(b)
        ha.merge(hb)
        _check(ha, a + b)

    def test_round_trip_through_plain_data(self) -> None:
        h = Histogram()
        h.extend([0.001, 0.002, 0.0035, 0.5])
        back = Histogram.from_dict(h.to_dict())
        assert back.quantile(0.5) == h.quantile(0.5)
        assert back.count == 4 and back.max == 0.5

    def test_empty_and_bad_values(self) -> None:
        h = Histogram()
        assert h.quantile(0.5) is None
        assert h.summary()["p50"] is None
        with pytest.raises(ValueError, match="finite"):
            h.record(float("nan"))
        with pytest.raises(ValueError, match="different"):
            h.merge(Histogram(relative_accuracy=0.01))

    def test_summary_in_milliseconds(self) -> None:
        h = Histogram()
        h.extend([0.010] * 99 + [0.100])
        s = h.summary()
        assert s["p50"] == pytest.approx(10.0, rel=0.01)
        assert s["max"] == pytest.approx(100.0)
        assert s["count"] == 100


@given(st.lists(st.floats(min_value=0.0, max_value=20.0), max_size=200))
def test_counts_at_most_match_exact_counts_away_from_the_bounds(values: list[float]) -> None:
    bounds = (0.001, 0.01, 0.1, 1.0, 10.0)
    h = Histogram()
    h.extend(values)
    got = h.counts_at_most(bounds)
    assert got == sorted(got) and (not values or got[-1] <= len(values))
    for b, n in zip(bounds, got, strict=True):
        exact_low = sum(v <= b * (1 - h.relative_accuracy) for v in values)
        exact_high = sum(v <= b * (1 + h.relative_accuracy) for v in values)
        assert exact_low <= n <= exact_high, (b, n)
