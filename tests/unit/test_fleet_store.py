"""The fleet store on a real SQLite file: migrations, one transaction per batch, round trips."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge_agent.fleet import rollout as R
from edge_agent.fleet.errors import FleetStoreError
from edge_agent.fleet.spec import parse_waves
from edge_agent.fleet.sqlite_store import SqliteStore
from edge_agent.fleet.store import UPDATE_HISTORY, Batch, CommandRow, UpdateRecord, migrations
from edge_agent.mqtt.fleet import FleetState


def msg(**kw: object) -> bytes:
    return json.dumps(kw).encode()


def test_migrations_are_numbered_and_applied_once(tmp_path: Path) -> None:
    assert [m.version for m in migrations()] == list(range(1, len(migrations()) + 1))
    s = SqliteStore(tmp_path / "f.sqlite")
    assert s.schema_version() == len(migrations())
    s.close()
    s = SqliteStore(tmp_path / "f.sqlite")  # again: nothing to do
    db = sqlite3.connect(tmp_path / "f.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(
        migrations())
    db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    db.commit()
    s.close()
    with pytest.raises(FleetStoreError, match="schema version 99 is newer"):
        SqliteStore(tmp_path / "f.sqlite")


def test_rows_and_seq_accounting_survive_a_reopen(tmp_path: Path) -> None:
    f = FleetState()
    f.ingest("edge/a/status", msg(seq=1, ts=1.0, online=True, groups=["lab"],
                                  models={"active": "digits 1.0"}, agent_version="0.1"), 1.0)
    for seq in (1, 2, 5, 6):
        f.ingest("edge/a/metrics", msg(seq=seq, ts=float(seq), fps={"processed": 4.0}), 2.0)
    f.ingest("edge/a/metrics", msg(seq=9, ts=9.0, gap={"from": 7, "to": 8, "reason":
                                                         "disk_full"}), 3.0)
    s = SqliteStore(tmp_path / "f.sqlite")
    s.write(Batch(rows=[f.devices["a"]]))
    s.close()
    row = SqliteStore(tmp_path / "f.sqlite").device("a")
    assert row is not None
    assert (row.online, row.active, row.groups, row.fps) == (True, "digits 1.0", ("lab",), 4.0)
    assert row.gaps == 2 and row.lost == 2 and row.seqs["metrics"].missing == {3, 4}
    # the restored tracker goes on exactly where it was: 3 arrives late, 6 again is a duplicate
    assert row.seqs["metrics"].add(3, 3.0) == "late"
    assert row.seqs["metrics"].add(6, 6.0) == "duplicate"


def test_a_batch_is_one_transaction(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "f.sqlite")
    u = UpdateRecord("a", 1, 1.0, "r1", "m", "2", "received", False, None, None, 1.0)
    bad = CommandRow("a", "r1.update", "update", "r1", {"x": float("nan")}, 1.0)
    s.write(Batch(updates=[u], commands=[bad]))  # NaN is written as JSON NaN: fine
    broken = Batch(updates=[UpdateRecord("a", 2, 2.0, "r1", "m", "2", "committed", True, None,
                                         None, 2.0)])
    broken.rollouts.append(object())  # type: ignore[arg-type]  # fails inside the transaction
    with pytest.raises(AttributeError):
        s.write(broken)
    assert [x.seq for x in s.update_history("a")] == [1]  # nothing of the failed batch


def test_update_history_is_bounded_and_rollouts_round_trip(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "f.sqlite")
    recs = [UpdateRecord("a", i, float(i), "r1", "m", "2", "downloading", False, None, None,
                         float(i)) for i in range(1, UPDATE_HISTORY + 51)]
    s.write(Batch(updates=recs))
    s.write(Batch(updates=recs[:10]))  # the same seqs again: nothing doubles
    hist = s.update_history("a", limit=10_000)
    assert len(hist) == UPDATE_HISTORY and hist[0].seq == 51
    view = {"a": R.DeviceView(True, "m 1", ("g",)), "b": R.DeviceView(False, "m 1", ("g",))}
    r = R.create("r1", "m", "2", R.Policy(parse_waves("1,100%")), view, 5.0, group="g")
    cmds = R.tick(r, 5.0, view)
    s.write(Batch(rollouts=[r], commands=[CommandRow(c.device, c.id, c.name, r.id,
                                                     {"id": c.id}, 5.0) for c in cmds]))
    assert s.rollout("r1") == r and [x.id for x in s.rollouts(active_only=True)] == ["r1"]
    assert [c.device for c in s.commands(rollout="r1", unsent=True)] == ["a"]
    s.write(Batch(sent=[("a", "r1.update", 6.0)]))
    assert s.commands(rollout="r1", unsent=True) == []
    R.abort(r, 7.0)
    s.write(Batch(rollouts=[r]))
    assert s.rollouts(active_only=True) == [] and s.rollout("r1").state == R.ABORTED  # type: ignore[union-attr]


def test_an_unusable_path_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(FleetStoreError, match="cannot create its folder"):
        SqliteStore(tmp_path / "file" / "f.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(FleetStoreError, match=r"junk\.sqlite"):
        SqliteStore(tmp_path / "junk.sqlite")
