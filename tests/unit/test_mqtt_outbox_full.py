"""The outbox on a full disk (a real tmpfs filled to ENOSPC): every lost record consumes its
seq, and the loss is reported by a gap record once space returns — across restarts too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.mqtt.errors import OutboxError, RecordNotStored
from edge_agent.mqtt.outbox import Outbox
from edge_agent.mqtt.seqledger import SLOT, LedgerState, SeqLedger
from tests.support.smalldisk import SmallDisk


def rec(seq: int) -> bytes:
    return json.dumps({"seq": seq, "pad": "x" * 200}).encode()


def covered(ob: Outbox, stream: str = "metrics") -> tuple[list[int], set[int]]:
    """(seqs of the stored records, seqs covered by gap records) on ``stream``."""
    seqs: list[int] = []
    gaps: set[int] = set()
    for r in ob.fetch(0, limit=10_000):
        if r.stream != stream:
            continue
        body = json.loads(r.payload)
        seqs.append(body["seq"])
        if "gap" in body:
            gaps.update(range(body["gap"]["from"], body["gap"]["to"] + 1))
    return seqs, gaps


def append_until_full(ob: Outbox, stream: str = "metrics", limit: int = 100_000) -> int:
    for _ in range(limit):
        try:
            ob.append(stream, "t", rec)
        except RecordNotStored as exc:
            return exc.seq or 0
    raise AssertionError("the disk never filled")


@pytest.fixture
def disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    with SmallDisk(tmp_path / "disk", "1m") as d:
        yield d


def test_lost_records_consume_seqs_and_a_gap_record_reports_them(disk: SmallDisk) -> None:
    ob = Outbox(disk.path / "o.sqlite")
    for _ in range(3):
        ob.append("metrics", "t", rec)
    disk.fill()
    lost = []
    for _ in range(5):
        with pytest.raises(RecordNotStored) as err:
            ob.append("metrics", "t", rec)
        assert err.value.reason == "disk_full" and err.value.seq is not None
        lost.append(err.value.seq)
    assert lost == [4, 5, 6, 7, 8]
    assert ob.next_seq("status") >= 1  # never raises on a full disk
    assert ob.unstored() == 5 and ob.stats()["unstored"] == 5
    disk.free()
    assert ob.append("metrics", "t", rec) == 10  # 9 is the gap record
    seqs, gaps = covered(ob)
    assert seqs == [1, 2, 3, 9, 10] and gaps == {4, 5, 6, 7, 8}
    gap = json.loads(ob.fetch(0, 100)[3].payload)
    assert gap == {"seq": 9, "gap": {"from": 4, "to": 8, "count": 5, "reason": "disk_full"}}
    st = ob.stats()
    assert st["dropped"] == {"metrics.disk_full": 5} and "unstored" not in st
    ob.close()
    assert Outbox(disk.path / "o.sqlite").seq("metrics") == 10


def test_seqs_survive_a_restart_while_the_disk_is_full(disk: SmallDisk) -> None:
    ob = Outbox(disk.path / "o.sqlite")
    ob.append("metrics", "t", rec)
    disk.fill()
    first = append_until_full(ob)
    for _ in range(4):
        with pytest.raises(RecordNotStored):
            ob.append("metrics", "t", rec)
    ob.close()
    # restart, still full: the outbox may or may not open; seqs go on from the ledger
    ob = Outbox(disk.path / "o.sqlite", degrade=True)
    for _ in range(3):
        with pytest.raises(RecordNotStored):
            ob.append("metrics", "t", rec)
    ob.close()
    disk.free()
    ob = Outbox(disk.path / "o.sqlite")
    last = ob.append("metrics", "t", rec)
    seqs, gaps = covered(ob)
    assert seqs == sorted(set(seqs)), "a seq was reused"
    assert set(range(1, last + 1)) == set(seqs) | gaps, "a seq is neither delivered nor a gap"
    assert {first, first + 1, first + 2, first + 3, first + 4} <= gaps
    assert ob.stats()["dropped"]["metrics.disk_full"] == len(gaps) == 8


def test_full_at_start_runs_degraded_then_opens(disk: SmallDisk) -> None:
    ob = Outbox(disk.path / "o.sqlite")
    for _ in range(2):
        ob.append("events", "t", rec)
    ob.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{ob.path}{suffix}").unlink(missing_ok=True)
    disk.fill()
    with pytest.raises(OutboxError, match="cannot open the MQTT outbox"):
        Outbox(disk.path / "o.sqlite")
    ob = Outbox(disk.path / "o.sqlite", degrade=True)
    assert not ob.is_open and ob.stats()["open"] is False and ob.stats()["error"]
    for _ in range(4):
        with pytest.raises(RecordNotStored) as err:
            ob.append("events", "t", rec)
        assert err.value.seq is None and err.value.reason == "disk_full"
    assert ob.fetch() == [] and ob.load_replies() == []
    with pytest.raises(OutboxError):
        ob.save_reply("id1", 1.0, {"ok": True}, [])
    assert not ob.retry_open()
    disk.free()
    assert ob.retry_open() and ob.is_open
    seqs, gaps = covered(ob, "events")
    assert seqs == [1, 2, 7] and gaps == {3, 4, 5, 6}
    assert ob.append("events", "t", rec) == 8


def test_unsequenced_losses_survive_a_restart(disk: SmallDisk) -> None:
    ob = Outbox(disk.path / "o.sqlite")
    ob.append("events", "t", rec)
    ob.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{ob.path}{suffix}").unlink(missing_ok=True)
    disk.fill()
    for run in range(2):
        ob = Outbox(disk.path / "o.sqlite", degrade=True)
        assert not ob.is_open, run
        for _ in range(3):
            with pytest.raises(RecordNotStored):
                ob.append("events", "t", rec)
        ob.close()
    disk.free()
    ob = Outbox(disk.path / "o.sqlite")
    assert covered(ob, "events") == ([1, 8], {2, 3, 4, 5, 6, 7})


def test_ledger_keeps_the_other_slot_after_a_torn_write(tmp_path: Path) -> None:
    led = SeqLedger(tmp_path / "seq.ledger")
    state = LedgerState()
    state.add_lost("metrics", 5, "disk_full")
    assert led.save(state)
    state.add_lost("metrics", 6, "disk_full")
    assert led.save(state)  # the other slot
    assert SeqLedger(tmp_path / "seq.ledger").load().lost == {"metrics": [[5, 6, "disk_full"]]}
    raw = bytearray((tmp_path / "seq.ledger").read_bytes())
    raw[10:20] = b"##########"  # tear the newest slot (generation 2 is at offset 0)
    (tmp_path / "seq.ledger").write_bytes(bytes(raw))
    got = SeqLedger(tmp_path / "seq.ledger").load()
    assert got.lost == {"metrics": [[5, 5, "disk_full"]]}  # the previous generation
    raw[SLOT + 10 : SLOT + 20] = b"##########"  # both torn: empty, never a crash
    (tmp_path / "seq.ledger").write_bytes(bytes(raw))
    assert SeqLedger(tmp_path / "seq.ledger").load().empty()


def test_ledger_merges_ranges_beyond_its_bound() -> None:
    state = LedgerState()
    for seq in range(1, 60, 3):  # 20 separate ranges
        state.add_lost("metrics", seq, "disk_full")
    ranges = state.lost["metrics"]
    assert len(ranges) == 8
    assert ranges[0][0] == 1 and ranges[-1][1] == 58
    assert all(a <= b for a, b, _ in ranges)
    covered_seqs = {s for a, b, _ in ranges for s in range(a, b + 1)}
    assert set(range(1, 60, 3)) <= covered_seqs
