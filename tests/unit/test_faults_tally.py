"""The verdict of benchmarks/faults.py: seqs made against what a consumer received."""

from __future__ import annotations

from typing import Any

from benchmarks.faults import Tally, tally


def recs(*seqs: int) -> list[dict[str, Any]]:
    return [{"seq": s, "device": "d"} for s in seqs]


def gap(seq: int, first: int, last: int) -> dict[str, Any]:
    return {"seq": seq, "gap": {"from": first, "to": last, "count": last - first + 1,
                                "reason": "disk_full"}}


def test_everything_arrived_with_duplicates_is_0_lost() -> None:
    t = tally(5, recs(1, 2, 3, 3, 4, 5, 2))
    assert t == Tally(made=5, received=5, duplicates=2, gaps=0, reported=0, gap_records=0,
                      kept=0, unseen=0)
    assert t.verdict == "0 lost"


def test_a_gap_record_makes_the_loss_visible() -> None:
    t = tally(9, [*recs(1, 2, 3), gap(7, 4, 6), *recs(8, 9)])
    assert (t.received, t.reported, t.gap_records, t.gaps, t.unseen) == (5, 3, 1, 0, 0)
    assert t.verdict == "loss visible as a gap"


def test_a_hole_between_seqs_is_visible_without_a_gap_record() -> None:
    t = tally(6, recs(1, 2, 5, 6))
    assert (t.gaps, t.unseen, t.verdict) == (2, 0, "loss visible as a gap")


def test_a_missing_tail_or_head_is_lost_unseen() -> None:
    assert tally(8, recs(1, 2, 3, 4, 5)).verdict == "LOST 3 unseen"
    assert tally(5, recs(3, 4, 5)).verdict == "LOST 2 unseen"  # the consumer was there first
    assert tally(4, []).verdict == "LOST 4 unseen"


def test_records_kept_in_the_outbox_are_not_lost() -> None:
    t = tally(8, recs(1, 2, 4, 5), kept=[3, 6, 7, 8])
    assert (t.kept, t.gaps, t.unseen, t.verdict) == (4, 0, 0, "0 lost")


def test_bad_records_and_a_malformed_gap_are_ignored() -> None:
    t = tally(3, [{"seq": True}, {"no": "seq"}, *recs(1, 2), {"seq": 3, "gap": {"from": 9}}])
    assert (t.received, t.gap_records, t.reported, t.verdict) == (2, 1, 0, "0 lost")
