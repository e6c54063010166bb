"""The per-cause log throttle (pure; the clock is a variable)."""

from __future__ import annotations

import logging

import pytest

from edge_agent.common.throttle import Throttle, ThrottledLog


class TestThrottle:
    def test_first_passes_then_counts_then_passes_with_the_count(self) -> None:
        t = Throttle(10.0)
        assert t.admit("a", 0.0) == (0, 0.0)
        assert [t.admit("a", x) for x in (1.0, 2.0, 9.9)] == [None, None, None]
        assert t.suppressed_total == 3
        assert t.admit("a", 12.0) == (3, 12.0)
        assert t.suppressed_total == 0
        assert t.admit("a", 13.0) is None

    def test_causes_are_independent(self) -> None:
        t = Throttle(10.0)
        assert t.admit("a", 0.0) == (0, 0.0)
        assert t.admit("b", 1.0) == (0, 0.0)
        assert t.admit("a", 2.0) is None
        assert t.admit("b", 3.0) is None

    def test_due_reports_a_flood_that_stopped_once(self) -> None:
        t = Throttle(10.0)
        t.admit("a", 0.0)
        t.admit("a", 1.0)
        t.admit("a", 2.0)
        t.admit("quiet", 0.0)
        assert t.due(5.0) == []
        assert t.due(11.0) == [("a", 2, 11.0)]
        assert t.due(30.0) == []
        assert t.admit("a", 31.0) == (0, 0.0)  # a new first occurrence

    def test_drain_hands_out_everything_pending(self) -> None:
        t = Throttle(10.0)
        t.admit("a", 0.0)
        t.admit("a", 1.0)
        assert t.drain(2.0) == [("a", 1, 2.0)]
        assert t.drain(3.0) == []

    def test_bounded_table_keeps_evicted_counts(self) -> None:
        t = Throttle(10.0, max_causes=2)
        t.admit("a", 0.0)
        t.admit("a", 0.5)
        t.admit("b", 1.0)
        t.admit("c", 2.0)  # evicts "a" with its pending count
        assert t.causes() == {"b", "c"}
        assert t.due(3.0) == [("a", 1, 2.0)]

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError):
            Throttle(0)


class TestThrottledLog:
    def test_lines_and_summaries(self, caplog: pytest.LogCaptureFixture) -> None:
        now = [0.0]
        tl = ThrottledLog(logging.getLogger("t.throttle"), 60.0, clock=lambda: now[0])
        caplog.set_level(logging.INFO, "t.throttle")
        for k in range(1000):
            now[0] = k * 0.01
            tl.warn("bad file", f"f{k}: not an image")
        assert [r.getMessage() for r in caplog.records] == ["f0: not an image"]
        now[0] = 61.0
        assert tl.warn("bad file", "f1000: not an image")
        assert caplog.records[-1].getMessage() == (
            "f1000: not an image (999 more like this in the last 61 s)"
        )
        tl.warn("bad file", "f1001: not an image")
        assert tl.flush() == 0
        assert tl.flush(final=True) == 1
        assert caplog.records[-1].getMessage() == (
            "f1001: not an image (1 more like this in the last 0 s; this was the last)"
        )
        assert caplog.records[-1].levelno == logging.WARNING
        assert len(caplog.records) == 3

    def test_a_quiet_cause_is_counted_when_another_logs(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        now = [0.0]
        tl = ThrottledLog(logging.getLogger("t.throttle2"), 10.0, clock=lambda: now[0])
        caplog.set_level(logging.INFO, "t.throttle2")
        tl.warn("a", "a1")
        tl.warn("a", "a2")
        now[0] = 11.0
        tl.warn("b", "b1")
        assert [r.getMessage() for r in caplog.records] == [
            "a1", "a2 (1 more like this in the last 11 s; this was the last)", "b1",
        ]

