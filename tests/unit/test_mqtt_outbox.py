"""The on-disk outbox: order, seq persistence, caps with counted drops, crash safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.mqtt.errors import OutboxCorrupt, OutboxError
from edge_agent.mqtt.outbox import Caps, Outbox


def rec(seq: int) -> bytes:
    return json.dumps({"seq": seq}).encode()


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_order_seq_and_ack(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    seqs = [ob.append("metrics", "edge/d/metrics", rec) for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert ob.append("events", "edge/d/events", rec) == 1  # per stream
    rows = ob.fetch(0, limit=10)
    assert [json.loads(r.payload)["seq"] for r in rows] == [1, 2, 3, 4, 5, 1]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert ob.fetch(rows[2].id, limit=2) == rows[3:5]
    assert ob.delete([rows[0].id, rows[1].id]) == 2
    assert len(ob) == 4 and ob.stats()["pending"] == 4
    ob.close()


def test_seq_and_records_survive_reopen(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    for _ in range(3):
        ob.append("metrics", "t", rec)
    ob.delete([ob.fetch()[0].id])
    ob.close()
    ob2 = Outbox(tmp_path / "o.sqlite")
    assert ob2.seq("metrics") == 3 and len(ob2) == 2
    assert ob2.append("metrics", "t", rec) == 4  # never reused
    assert ob2.stats()["pending_bytes"] == sum(len(r.payload) for r in ob2.fetch())


def test_record_cap_drops_oldest_and_counts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", Caps(max_records=10))
    for _ in range(15):
        ob.append("metrics", "t", rec)
    ob.append("events", "t", rec)
    rows = ob.fetch(limit=100)
    assert len(rows) == 10
    assert next(json.loads(r.payload)["seq"] for r in rows) == 7  # 1..6 dropped
    assert ob.stats()["dropped"] == {"metrics.records": 6}


def test_byte_cap(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", Caps(max_bytes=5000))
    for _ in range(20):
        ob.append("metrics", "t", lambda s: b"x" * 1000)
    st = ob.stats()
    assert st["pending_bytes"] <= 5000 and st["pending"] == 5
    assert st["dropped"] == {"metrics.bytes": 15}


def test_age_cap_and_counters_persist(tmp_path: Path) -> None:
    clock = Clock()
    ob = Outbox(tmp_path / "o.sqlite", Caps(max_age_s=60), clock=clock)
    ob.append("metrics", "t", rec)
    clock.t += 30
    ob.append("metrics", "t", rec)
    clock.t += 40
    assert ob.stats()["oldest_age_s"] == 70
    assert ob.expire() == 1
    ob.close()
    ob2 = Outbox(tmp_path / "o.sqlite", Caps(max_age_s=60), clock=clock)
    assert ob2.stats()["dropped"] == {"metrics.age": 1} and len(ob2) == 1


def test_build_failure_rolls_back(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")

    def bad(seq: int) -> bytes:
        raise ValueError("cannot serialise")

    with pytest.raises(ValueError):
        ob.append("metrics", "t", bad)
    # the transaction was rolled back: no seq consumed, nothing stored
    assert ob.append("metrics", "t", rec) == 1


def test_replies_persist(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.save_reply("a", 1.0, {"ok": True}, [])
    ob.save_reply("b", 2.0, {"ok": False}, ["a"])
    ob.close()
    assert Outbox(tmp_path / "o.sqlite").load_replies() == [("b", 2.0, {"ok": False})]


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot open the MQTT outbox"):
        Outbox(blocker / "o.sqlite")


CHILD = """
import os, sys, json
sys.path.insert(0, {root!r})
from edge_agent.mqtt.outbox import Outbox
ob = Outbox({path!r})
for i in range(200):
    ob.append("metrics", "t", lambda s: json.dumps({{"seq": s}}).encode())
    if i == 99:
        print("HALF", flush=True)
        sys.stdin.readline()
"""


def test_survives_kill9(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    root = str(Path(__file__).resolve().parents[2])
    p = subprocess.Popen([sys.executable, "-c", CHILD.format(root=root, path=str(path))],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "HALF"
    os.kill(p.pid, 9)
    p.wait()
    ob = Outbox(path)
    seqs = [json.loads(r.payload)["seq"] for r in ob.fetch(limit=1000)]
    assert seqs == list(range(1, 101))
    assert ob.append("metrics", "t", rec) == 101


def test_damaged_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxCorrupt, match="damaged"):
        Outbox(path)
    ob, aside = Outbox.open_or_reset(path)
    assert aside is not None and aside.read_bytes().startswith(b"this is not")
    assert ob.append("metrics", "t", rec) == 1
    ob.close()
    ob2, aside2 = Outbox.open_or_reset(path)  # a healthy file is simply opened
    assert aside2 is None and ob2.seq("metrics") == 1


def test_records_made_before_the_clock_was_set_are_not_aged_out(tmp_path: Path) -> None:
    clock = Clock(t=100.0)  # booted without RTC: 1970
    ob = Outbox(tmp_path / "o.sqlite", Caps(max_age_s=60), clock=clock)
    ob.append("metrics", "t", rec)
    clock.t += 3600
    assert ob.expire() == 0  # our clock is not set: no age can be trusted
    clock.t = 1_700_000_000.0  # NTP set the time
    ob.append("metrics", "t", rec)
    clock.t += 120
    assert ob.expire() == 1  # the record with a real stamp aged out, the 1970 one stays
    assert [json.loads(r.payload)["seq"] for r in ob.fetch()] == [1]
