"""The fleet store on both engines (a real SQLite file, a real PostgreSQL server): migrations,
one transaction per batch, round trips, rows locked for replicas, the leader lock."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.fleet import rollout as R
from edge_agent.fleet.errors import FleetStoreError
from edge_agent.fleet.spec import parse_waves
from edge_agent.fleet.sql_store import SqlStore
from edge_agent.fleet.sqlite_store import SqliteStore
from edge_agent.fleet.store import UPDATE_HISTORY, Batch, CommandRow, UpdateRecord, migrations
from edge_agent.mqtt.fleet import FleetState


def msg(**kw: object) -> bytes:
    return json.dumps(kw).encode()


Opener = Callable[[], SqlStore]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """``open()`` -> the store (the same database every call), closed at the end."""
    opened: list[SqlStore] = []
    if request.param == "sqlite":
        def make() -> SqlStore:
            return SqliteStore(tmp_path / "f.sqlite")
    else:
        from edge_agent.fleet.postgres_store import PostgresStore

        url = request.getfixturevalue("pg_server").new_database()

        def make() -> SqlStore:
            return PostgresStore(url)

    def open_() -> SqlStore:
        opened.append(make())
        return opened[-1]
    yield open_
    for s in opened:
        s.close()


def raw(s: SqlStore, sql: str) -> list[dict[str, Any]]:
    return s._rows(sql)


def test_migrations_are_numbered_and_applied_once(engine: Opener) -> None:
    assert [m.version for m in migrations()] == list(range(1, len(migrations()) + 1))
    s = engine()
    assert s.schema_version() == len(migrations())
    s.close()
    s = engine()  # again: nothing to do
    assert raw(s, "SELECT COUNT(*) AS n FROM schema_migrations")[0]["n"] == len(migrations())
    s.write(Batch(rollouts=[]))
    s.transact(lambda tx: Batch())
    db = s._db()
    s._exec(db, "INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    s.close()
    with pytest.raises(FleetStoreError, match="schema version 99 is newer"):
        engine()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "f.sqlite").close()
    db = sqlite3.connect(tmp_path / "f.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rows_and_seq_accounting_survive_a_reopen(engine: Opener) -> None:
    f = FleetState()
    f.ingest("edge/a/status", msg(seq=1, ts=1.0, online=True, groups=["lab"],
                                  models={"active": "digits 1.0"}, agent_version="0.1"), 1.0)
    for seq in (1, 2, 5, 6):
        f.ingest("edge/a/metrics", msg(seq=seq, ts=float(seq), fps={"processed": 4.0}), 2.0)
    f.ingest("edge/a/metrics", msg(seq=9, ts=9.0, gap={"from": 7, "to": 8, "reason":
                                                         "disk_full"}), 3.0)
    s = engine()
    s.write(Batch(rows=[f.devices["a"]]))
    s.close()
    row = engine().device("a")
    assert row is not None
    assert (row.online, row.active, row.groups, row.fps) == (True, "digits 1.0", ("lab",), 4.0)
    assert row.gaps == 2 and row.lost == 2 and row.seqs["metrics"].missing == {3, 4}
    # the restored tracker goes on exactly where it was: 3 arrives late, 6 again is a duplicate
    assert row.seqs["metrics"].add(3, 3.0) == "late"
    assert row.seqs["metrics"].add(6, 6.0) == "duplicate"


def test_a_batch_is_one_transaction(engine: Opener) -> None:
    s = engine()
    u = UpdateRecord("a", 1, 1.0, "r1", "m", "2", "received", False, None, None, 1.0)
    bad = CommandRow("a", "r1.update", "update", "r1", {"x": float("nan")}, 1.0)
    s.write(Batch(updates=[u], commands=[bad]))  # NaN is written as JSON NaN: fine
    broken = Batch(updates=[UpdateRecord("a", 2, 2.0, "r1", "m", "2", "committed", True, None,
                                         None, 2.0)])
    broken.rollouts.append(object())  # type: ignore[arg-type]  # fails inside the transaction
    with pytest.raises(AttributeError):
        s.write(broken)
    assert [x.seq for x in s.update_history("a")] == [1]  # nothing of the failed batch


def test_update_history_is_bounded_and_rollouts_round_trip(engine: Opener) -> None:
    s = engine()
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


def _ingest(s: SqlStore, device: str, seqs: list[int], now: float) -> None:
    """What one replica's pass does: read the rows inside the transaction, apply, write."""
    def build(tx: Any) -> Batch:
        f = FleetState()
        f.devices.update(tx.device_rows([device]))
        for q in seqs:
            f.ingest(f"edge/{device}/metrics", msg(seq=q, ts=float(q)), now)
        return Batch(rows=[f.devices[device]])
    s.transact(build)


def test_two_writers_sharing_a_device_count_every_record_once(engine: Opener) -> None:
    # a shared subscription splits one device's records over the replicas: each reads the
    # stored tracker inside its transaction, so neither overwrites the other's seqs
    a, b = engine(), engine()
    _ingest(a, "d", [1, 3, 5], 1.0)
    _ingest(b, "d", [2, 4, 6], 2.0)
    _ingest(a, "d", [4, 8], 3.0)  # a duplicate; 7 never comes
    row = engine().device("d")
    assert row is not None and row.first_seen == 1.0 and row.last_seen == 3.0
    t = row.seqs["metrics"]
    assert (t.received, t.missing, t.duplicates) == (8, {7}, 1)  # 8 arrived, one twice


def test_a_device_row_is_locked_until_the_writer_commits(engine: Opener) -> None:
    import threading

    a, b = engine(), engine()  # PostgreSQL: the row lock; SQLite: BEGIN IMMEDIATE
    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow(tx: Any) -> Batch:
        rows = tx.device_rows(["d"])
        inside.set()
        release.wait(10)
        f = FleetState()
        f.devices.update(rows)
        f.ingest("edge/d/metrics", msg(seq=1, ts=1.0), 1.0)
        return Batch(rows=[f.devices["d"]])

    t1 = threading.Thread(target=a.transact, args=(slow,))
    t1.start()
    assert inside.wait(10)
    t2 = threading.Thread(target=lambda: (_ingest(b, "d", [2], 2.0), done.set()))
    t2.start()
    assert not done.wait(0.5)  # b waits for a's lock (an ordering check, no speed threshold)
    release.set()
    t1.join(10)
    t2.join(10)
    t = engine().device("d").seqs["metrics"]  # type: ignore[union-attr]
    assert (t.received, t.missing) == (2, set())


def _cached_pass(s: SqlStore, f: FleetState, device: str, seqs: list[int], now: float
                 ) -> int:
    """What a replica's pass does (``FleetService._pass``): its rows stay in memory with their
    revision; inside the transaction it locks the rows and reads again only the stale ones.
    Returns how many rows it had to read again."""
    reread = []

    def build(tx: Any) -> Batch:
        known = {d: r.rev for d, r in f.devices.items() if d == device and r.rev}
        fresh = tx.lock_devices([device], known)
        if device not in known:
            f.devices.pop(device, None)
        f.devices.update(fresh)
        reread.append(len(fresh))
        for q in seqs:
            f.ingest(f"edge/{device}/metrics", msg(seq=q, ts=float(q)), now)
        return Batch(rows=[f.devices[device]])
    s.transact(build)
    return reread[0]


def test_a_replica_reads_again_only_the_rows_another_one_changed(engine: Opener) -> None:
    a, b = engine(), engine()
    fa, fb = FleetState(), FleetState()
    assert _cached_pass(a, fa, "d", [1, 2], 1.0) == 0  # new: nothing stored to read
    assert fa.devices["d"].rev == 1
    assert _cached_pass(a, fa, "d", [3], 2.0) == 0  # its own copy is the stored one
    assert _cached_pass(b, fb, "d", [4], 3.0) == 1  # b never saw d: reads a's row
    assert _cached_pass(a, fa, "d", [5], 4.0) == 1  # b changed it since: a reads it again
    t = fa.devices["d"].seqs["metrics"]
    assert (t.received, t.missing, fa.devices["d"].rev) == (5, set(), 4)
    stored = engine().device("d")
    assert stored is not None and stored.rev == 4 and stored.seqs["metrics"].last == 5


def test_two_caching_replicas_interleaved_count_every_record_once(engine: Opener) -> None:
    # a shared subscription deals one device's records out to both replicas in turn
    a, b = engine(), engine()
    fa, fb = FleetState(), FleetState()
    for i, q in enumerate([1, 2, 3, 4, 6, 7, 6, 9, 10]):  # 5 and 8 never come, 6 twice
        _cached_pass(*((a, fa) if i % 2 == 0 else (b, fb)), "d", [q], float(i + 1))
    t = engine().device("d").seqs["metrics"]  # type: ignore[union-attr]
    assert (t.received, t.missing, t.duplicates) == (9, {5, 8}, 1)
    assert engine().lost_by_stream() == [("d", "metrics", 2, 0, 1)]


def test_a_row_written_over_a_stale_revision_is_refused(engine: Opener) -> None:
    s = engine()
    f = FleetState()
    _cached_pass(s, f, "d", [1], 1.0)
    row = f.devices["d"]
    row.rev = 0  # as if read before the stored write (a second writer without the lock)
    f.ingest("edge/d/metrics", msg(seq=2, ts=2.0), 2.0)
    with pytest.raises(FleetStoreError, match="changed by another writer"):
        s.write(Batch(rows=[row]))
    assert engine().device("d").seqs["metrics"].last == 1  # type: ignore[union-attr]


def test_device_counts_are_counted_by_the_database(engine: Opener) -> None:
    s = engine()
    f = FleetState()
    for d, online in [("a", True), ("b", True), ("c", False)]:
        f.ingest(f"edge/{d}/status", msg(seq=1, online=online, model={"name": "m",
                                                                       "version": "1"}), 1.0)
    s.write(Batch(rows=list(f.devices.values())))
    assert sorted(s.device_counts(), key=str) == sorted(
        [(True, "m 1", "m", "1", 2), (False, "m 1", "m", "1", 1)], key=str)


def test_only_one_store_leads_until_its_connection_ends(engine: Opener) -> None:
    a, b = engine(), engine()
    if not a.shared_writers:
        assert a.lead("x") and b.lead("x")  # SQLite: one fleet serve per file, it leads
        return
    assert a.lead("fleet") and a.lead("fleet")  # held: stays True
    assert not b.lead("fleet")
    assert b.lead("other")  # another name, another lock
    a.close()  # its connection ends (as when the process dies): the lock is free
    assert b.lead("fleet")


def test_updates_since_reads_what_any_writer_stored(engine: Opener) -> None:
    s = engine()
    recs = [UpdateRecord(d, q, 1.0, dep, "m", "2", st, st == "committed", None, None, at)
            for d, q, dep, st, at in [("a", 2, "r1", "committed", 5.0),
                                      ("a", 1, "r1", "downloading", 4.0),
                                      ("b", 1, "r2", "received", 5.0),
                                      ("c", 1, "r1", "received", 1.0)]]
    s.write(Batch(updates=recs))
    got = engine().updates_since(["r1"], 3.0)
    assert [(u.device, u.seq, u.state) for u in got] == [("a", 1, "downloading"),
                                                         ("a", 2, "committed")]
    assert engine().updates_since([], 0.0) == []


@pytest.mark.postgres
def test_an_unreachable_postgres_is_one_line_without_the_password() -> None:
    from edge_agent.fleet.postgres_store import PostgresStore, describe
    from tests.support.updates import free_port

    url = f"postgresql://fleet:s3cret@127.0.0.1:{free_port()}/fleet"
    with pytest.raises(FleetStoreError) as err:
        PostgresStore(url, connect_timeout=2)
    text = str(err.value)
    assert "s3cret" not in text and "\n" not in text
    assert text.startswith(f"fleet database {describe(url)}: cannot connect")
    assert describe(url) == f"postgresql://fleet@127.0.0.1:{url.split(':')[3].split('/')[0]}/fleet"
