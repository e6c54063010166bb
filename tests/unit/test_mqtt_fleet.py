"""Central side, pure: seq gap detection and the fleet table."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.mqtt.fleet import FleetState, SeqTracker


class TestSeqTracker:
    def test_gap_late_and_duplicate(self) -> None:
        t = SeqTracker()
        assert [t.add(s) for s in (5, 6, 9)] == ["new", "new", "new"]
        assert t.gaps == 2 and t.missing == {7, 8}
        assert t.add(7) == "late" and t.gaps == 1
        assert t.add(6) == "duplicate" and t.duplicates == 1
        assert t.add(3) == "late" and t.missing == {4, 8}  # older than the first seen

    def test_bounded(self) -> None:
        t = SeqTracker(max_missing=10)
        t.add(1)
        t.add(1000)
        assert len(t.missing) == 10 and t.gaps == 998

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=200))
    def test_any_order_reports_exactly_what_is_missing(self, seqs: list[int]) -> None:
        t = SeqTracker()
        for s in seqs:
            t.add(s)
        expected_missing = set(range(min(seqs), max(seqs) + 1)) - set(seqs)
        assert t.missing == expected_missing
        assert t.duplicates == len(seqs) - len(set(seqs))


    def test_gap_record_explains_the_seqs_it_covers(self) -> None:
        t = SeqTracker()
        for s in (1, 2, 3):
            t.add(s)
        t.add(9)  # the gap record itself
        assert t.gaps == 5
        assert t.add_gap(4, 8, "disk_full") == 5
        assert t.gaps == 0 and t.lost == 5 and t.reported == {"disk_full": 5}
        t.add(12)
        assert t.add_gap(10, 10, "disk_full") == 1 and t.missing == {11}

    def test_gap_record_seen_first_covers_the_range_below(self) -> None:
        t = SeqTracker()
        t.add(50)  # joined mid-stream: the first record is a gap record for 40..49
        assert t.add_gap(40, 49, "disk_full") == 10 and t.gaps == 0 and t.first == 40

    def test_gap_record_beyond_the_bound_reduces_untracked(self) -> None:
        t = SeqTracker(max_missing=10)
        t.add(1)
        t.add(1001)
        assert t.add_gap(2, 1000, "disk_full") == 999 and t.gaps == 0


def msg(**kw: object) -> bytes:
    return json.dumps(kw).encode()


class TestFleetState:
    def test_rows_from_status_and_metrics(self) -> None:
        f = FleetState()
        f.ingest("edge/a/status", msg(seq=1, online=True, model={"name": "face"},
                                      models={"active": "face 3"}, backend="litert"), 10.0)
        for s in (1, 2, 4):
            f.ingest("edge/a/metrics", msg(seq=s, fps={"processed": 12.5},
                                           latency_ms={"e2e": {"p95": 8.0}},
                                           cpu={"process_percent": 40.0},
                                           temperature={"cpu_c": 61.0}),
                     11.0 + s)
        row = f.devices["a"]
        assert (row.online, row.model, row.version, row.backend) == (True, "face", "3", "litert")
        assert (row.fps, row.p95_ms, row.cpu_percent, row.temperature_c) == (12.5, 8.0, 40.0, 61.0)
        assert row.gaps == 1 and row.last_seen == 15.0
        f.ingest("edge/a/status", msg(seq=2, online=False, reason="connection lost"), 20.0)
        assert row.online is False and row.reason == "connection lost"
        assert row.last_seen == 15.0  # a will is not a sign of life
        assert row.to_json()["seq"]["metrics"]["missing"] == 1

    def test_ignores_foreign_and_bad(self) -> None:
        f = FleetState()
        assert f.ingest("edge/a/cmd/ping", b"{}", 0) is None
        assert f.ingest("other/a/metrics", b"{}", 0) is None
        assert f.ingest("edge/a/metrics", b"\xff", 0) is None
        assert f.ingest("edge/a/metrics", b"[1]", 0) is None
        assert f.ignored == 2 and f.devices == {}


def test_fleet_row_reports_gap_records_apart_from_gaps() -> None:
    f = FleetState()
    for s in (1, 2):
        f.ingest("edge/a/metrics", msg(seq=s, fps={"processed": 5.0}), 1.0)
    gap = {"from": 3, "to": 7, "count": 5, "reason": "disk_full"}
    row = f.ingest("edge/a/metrics", msg(seq=8, gap=gap), 2.0)
    assert row is not None and row.gaps == 0 and row.lost == 5 and row.fps == 5.0
    f.ingest("edge/a/metrics", msg(seq=10), 3.0)
    assert row.gaps == 1 and row.lost == 5
    assert row.to_json()["seq"]["metrics"]["reported_lost"] == {"disk_full": 5}
    bad = {"from": 20, "to": 30}  # a range not before the record's own seq: ignored
    f.ingest("edge/a/metrics", msg(seq=11, gap=bad), 4.0)
    assert row.lost == 5


def test_a_stream_that_starts_over_is_a_reset_not_duplicates() -> None:
    t = SeqTracker()
    for s in (1, 2, 4):
        assert t.add(s, float(s)) == "new"
    assert t.add(2, 2.0) == "duplicate"  # the same record again (same ts)
    assert t.add(3, 3.0) == "late"  # made before the last one: fills its gap
    assert t.add(1, 100.0) == "reset"  # seq 1 made after everything: the outbox started over
    assert t.resets == 1 and t.first == t.last == 1 and t.duplicates == 1
    assert t.add(2, 101.0) == "new"
    back = SeqTracker.from_state(json.loads(json.dumps(t.state())))
    assert back.state() == t.state()


def test_a_duplicate_record_changes_nothing_but_its_counter() -> None:
    f = FleetState()
    f.ingest("edge/a/metrics", msg(seq=1, ts=1.0, fps={"processed": 5.0}), 1.0)
    f.ingest("edge/a/metrics", msg(seq=2, ts=2.0, fps={"processed": 7.0}), 2.0)
    got = f.ingest_record("edge/a/metrics", msg(seq=1, ts=1.0, fps={"processed": 5.0}), 3.0)
    assert got is not None and not got.applied and got.kind == "duplicate"
    assert got.row.fps == 7.0 and got.row.last_seen == 2.0 and got.row.duplicates == 1
