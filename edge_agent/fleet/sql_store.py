"""The fleet store's SQL, shared by both engines (:mod:`.sqlite_store`, :mod:`.postgres_store`).

Every statement is written once, with ``?`` placeholders (a dialect turns them into its own),
and run through a DB-API connection the dialect opens. Migrations are the versioned scripts of
``migrations/NNNN_*.sql`` (:func:`~.store.migrations`), recorded in ``schema_migrations``; a
database made by a newer edge-agent (a higher version than this one knows) is refused, never
changed. Each :class:`~.store.Batch` is one transaction; :meth:`SqlStore.transact` lets the
caller read the rows it is about to change inside that transaction (locked, on an engine where
several replicas write), so replicas never overwrite each other's seq accounting.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

from ..mqtt.fleet import DeviceRow, SeqTracker
from .errors import FleetStoreError
from .rollout import Rollout
from .store import UPDATE_HISTORY, Batch, CommandRow, UpdateRecord, migrations

Row = dict[str, Any]

DEVICE_COLS = ("device", "online", "model", "version", "active", "agent_version", "groups_json",
               "summary_json", "first_seen", "last_seen", "missing", "reported_lost",
               "duplicates", "rev")
STREAM_COLS = ("device", "stream", "state_json", "received", "missing", "reported_lost",
               "duplicates", "last_seq")
UPDATE_COLS = ("device", "seq", "ts", "deployment", "model", "version", "state", "final",
               "reason", "detail", "received_at")
COLUMN_TYPES = {c: "text" for c in (*DEVICE_COLS, *STREAM_COLS, *UPDATE_COLS)} | {
    c: "bigint" for c in ("missing", "reported_lost", "duplicates", "rev", "received",
                          "last_seq", "seq")} | {
    c: "integer" for c in ("online", "final")} | {
    c: "double precision" for c in ("first_seen", "last_seen", "ts", "received_at")}
"""The SQL type of every column written in bulk (PostgreSQL's arrays need one)."""


def _on_conflict(cols: Sequence[str], key: Sequence[str], keep: Sequence[str] = ()) -> str:
    """``ON CONFLICT (key) DO UPDATE`` every column but the key and ``keep``."""
    sets = ", ".join(f"{c}=excluded.{c}" for c in cols if c not in key and c not in keep)
    return (f"ON CONFLICT ({', '.join(key)}) DO " + (f"UPDATE SET {sets}" if sets else
                                                      "NOTHING"))


def _upsert(table: str, cols: Sequence[str], key: Sequence[str], keep: Sequence[str] = ()
            ) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` every column but the key and ``keep``."""
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            + _on_conflict(cols, key, keep))


# a device row is written only over the revision it was read at (see migration 4): the rows
# are locked first, so this never fails unless something is wrong; it is checked anyway
DEVICE_CONFLICT = _on_conflict(DEVICE_COLS, ("device",), keep=("first_seen",)) + (
    ", first_seen=COALESCE(devices.first_seen, excluded.first_seen) "
    "WHERE devices.rev = excluded.rev - 1")
STREAM_CONFLICT = _on_conflict(STREAM_COLS, ("device", "stream"))
UPDATE_CONFLICT = _on_conflict(UPDATE_COLS, ("device", "seq"), keep=UPDATE_COLS)
UPSERT_ROLLOUT = _upsert("rollouts", ("id", "created_at", "state", "doc_json"), ("id",),
                         keep=("created_at",))
INSERT_COMMAND = _upsert("commands", ("device", "id", "name", "rollout", "body_json",
                                      "created_at"), ("device", "id"),
                         keep=("name", "rollout", "body_json", "created_at"))
CHUNK = 500  # devices per read (SQLite's bound parameters)


class Tx:
    """The open transaction handed to :meth:`SqlStore.transact`'s callback."""

    def __init__(self, store: SqlStore, db: Any) -> None:
        self._store, self._db = store, db

    def device_rows(self, devices: Collection[str]) -> dict[str, DeviceRow]:
        """The stored rows of these devices (with their trackers), locked until the commit
        where several replicas write (one not stored yet is missing from the answer, but a
        placeholder row is locked for it, so two replicas never both create it)."""
        return self.lock_devices(devices, {})

    def lock_devices(self, devices: Collection[str], known: Mapping[str, int]
                     ) -> dict[str, DeviceRow]:
        """Lock the rows of these devices until the commit (where several replicas write)
        and read back their revisions only; the stored rows (with their trackers) of those
        whose revision is not ``known[device]`` (0 for one not known): another writer
        changed them since. The others the caller has, as they are stored."""
        return self._store._lock_devices(self._db, sorted(set(devices)), known)

    def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self._store._fetch(self._db, sql, args)


class SqlStore:
    """The SQL both engines share; a dialect provides the connection and its quirks."""

    placeholder = "?"
    lock_rows = ""  # " FOR UPDATE" where several writers share the database
    shared_writers = False  # True: replicas write too; read rows inside the transaction
    errors: tuple[type[BaseException], ...] = ()
    where = ""  # names the database in messages

    def __init__(self) -> None:
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: list[Any] = []
        self._migrate()

    # -- what a dialect provides -----------------------------------------------------------
    def _connect(self) -> Any:  # a DB-API connection, autocommit (transactions explicit)
        raise NotImplementedError

    def _begin(self, db: Any) -> None:
        db.execute("BEGIN")

    def _lock_migrations(self, db: Any) -> None:
        """Inside the migration's transaction: keep other replicas out until it commits."""

    def lead(self, name: str) -> bool:
        """Be the rollout leader ``name``? One writer per database: always (PostgreSQL: an
        advisory lock)."""
        return True

    # -- connections -----------------------------------------------------------------------
    def _db(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
            self._all.append(db)
        return db

    def close(self) -> None:
        for db in self._all:
            with contextlib.suppress(Exception):
                db.close()
        self._all.clear()
        self._local = threading.local()

    def _fail(self, what: str, exc: BaseException) -> FleetStoreError:
        return FleetStoreError(f"fleet database {self.where}: {what} failed: "
                               f"{str(exc).strip() or type(exc).__name__}")

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    @contextlib.contextmanager
    def _transaction(self, db: Any) -> Iterator[None]:
        self._begin(db)
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _exec(self, db: Any, sql: str, args: Sequence[Any] = ()) -> None:
        db.execute(self._sql(sql), tuple(args))

    def _many(self, db: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            db.cursor().executemany(self._sql(sql), rows)

    def _in(self, col: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``col IN (...)`` for these values: the SQL and its arguments."""
        return f"{col} IN ({', '.join('?' * len(values))})", list(values)

    def _insert_rows(self, db: Any, table: str, cols: Sequence[str],
                     rows: Sequence[tuple[Any, ...]], tail: str) -> int:
        """``INSERT INTO table (cols) <rows> tail`` (an ``ON CONFLICT`` clause); the rows it
        inserted or changed. Here one statement per row (SQLite runs in-process)."""
        if not rows:
            return 0
        cur = db.cursor()
        cur.executemany(self._sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                                  f"({', '.join('?' * len(cols))}) {tail}"), rows)
        return int(cur.rowcount)

    def _fetch(self, db: Any, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        cur = db.cursor()
        cur.execute(self._sql(sql), tuple(args))
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    # -- migrations ------------------------------------------------------------------------
    def _migrate(self) -> None:
        known = migrations()
        try:
            db = self._db()
            with self._transaction(db):
                self._lock_migrations(db)
                self._exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER "
                           "PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT "
                           "NULL)")
                have = self._version(db)
                if have > len(known):
                    raise FleetStoreError(
                        f"fleet database {self.where}: schema version {have} is newer than "
                        f"this edge-agent knows ({len(known)}); run the newer edge-agent or "
                        "restore a backup")
                for m in known[have:]:  # all in one transaction: a failed one leaves nothing
                    for stmt in m.statements():
                        self._exec(db, stmt)
                    self._exec(db, "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                               (m.version, m.name, time.time()))
        except self.errors as exc:
            raise self._fail("migration", exc) from None

    def _version(self, db: Any) -> int:
        return int(self._fetch(db, "SELECT MAX(version) AS v FROM schema_migrations")[0]["v"]
                   or 0)

    def schema_version(self) -> int:
        return self._version(self._db())

    # -- writes ----------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        if batch:
            self.transact(lambda tx: batch)

    def transact(self, build: Callable[[Tx], Batch]) -> Batch:
        """One transaction: ``build(tx)`` may read (and lock) rows, then its batch is written."""
        db = self._db()
        with self._write_lock:
            try:
                with self._transaction(db):
                    batch = build(Tx(self, db))
                    self._write(db, batch)
            except self.errors as exc:
                raise self._fail("write", exc) from None
            for row in batch.rows:  # committed: the rows are now at their new revision
                row.rev += 1
        return batch

    def _write(self, db: Any, b: Batch) -> None:
        devices, streams = [], []
        for row in b.rows:
            st = row.state()
            devices.append((row.device, None if row.online is None else int(row.online),
                            row.model, row.version, row.active, row.agent_version,
                            json.dumps(st["groups"]), json.dumps(st["summary"]),
                            row.first_seen, row.last_seen, row.gaps, row.lost, row.duplicates,
                            row.rev + 1))
            streams += [(row.device, name, json.dumps(t.state()), t.received, t.gaps, t.lost,
                         t.duplicates, t.last) for name, t in sorted(row.seqs.items())]
        devices.sort()  # one lock order for every writer
        streams.sort()
        done = self._insert_rows(db, "devices", DEVICE_COLS, devices, DEVICE_CONFLICT)
        if done != len(devices):
            raise FleetStoreError(
                f"fleet database {self.where}: {len(devices) - done} device row(s) were "
                "changed by another writer since they were read (a second fleet serve on "
                "this SQLite file?); nothing of this batch was written")
        self._insert_rows(db, "streams", STREAM_COLS, streams, STREAM_CONFLICT)
        self._insert_rows(db, "update_records", UPDATE_COLS, [
            (u.device, u.seq, u.ts, u.deployment, u.model, u.version, u.state, int(u.final),
             u.reason, u.detail, u.received_at) for u in b.updates], UPDATE_CONFLICT)
        self._many(db, "DELETE FROM update_records WHERE device = ? AND seq < (SELECT seq FROM "
                   "update_records WHERE device = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                   [(d, d, UPDATE_HISTORY - 1) for d in sorted({u.device for u in b.updates})])
        self._many(db, UPSERT_ROLLOUT, [(r.id, r.created_at, r.state, json.dumps(r.to_json()))
                                        for r in b.rollouts])
        self._many(db, INSERT_COMMAND, [(c.device, c.id, c.name, c.rollout, json.dumps(c.body),
                                         c.created_at) for c in b.commands])
        self._many(db, "UPDATE commands SET sent_at = ? WHERE device = ? AND id = ? AND "
                   "sent_at IS NULL", [(ts, dev, cid) for dev, cid, ts in b.sent])
        self._many(db, "UPDATE commands SET reply_json = ?, replied_at = ? WHERE device = ? "
                   "AND id = ? AND reply_json IS NULL",
                   [(json.dumps(reply), ts, dev, cid) for dev, cid, reply, ts in b.replies])

    def _lock_devices(self, db: Any, devices: list[str], known: Mapping[str, int]
                      ) -> dict[str, DeviceRow]:
        out: dict[str, DeviceRow] = {}
        for i in range(0, len(devices), CHUNK):
            part = devices[i:i + CHUNK]
            new = [(d, 0) for d in part if d not in known]
            if self.shared_writers and new:  # a row to lock, also for a device not stored yet
                self._insert_rows(db, "devices", ("device", "rev"), new,
                                  "ON CONFLICT (device) DO NOTHING")
            where, args = self._in("device", part)
            stale = [r["device"] for r in self._fetch(
                db, f"SELECT device, rev FROM devices WHERE {where} ORDER BY device"
                f"{self.lock_rows}", args) if r["rev"] != known.get(r["device"], 0)]
            if stale:
                out.update(self._read_devices(db, stale))
        return out

    def _read_devices(self, db: Any, devices: list[str]) -> dict[str, DeviceRow]:
        """The stored rows of these devices (placeholders apart), with their trackers."""
        where, args = self._in("device", devices)
        seqs: dict[str, dict[str, SeqTracker]] = {}
        for s in self._fetch(db, f"SELECT device, stream, state_json FROM streams WHERE "
                             f"{where}", args):
            seqs.setdefault(s["device"], {})[s["stream"]] = SeqTracker.from_state(
                json.loads(s["state_json"]))
        return {r["device"]: self._device(r, seqs.get(r["device"], {}))
                for r in self._fetch(db, f"SELECT * FROM devices WHERE {where}", args)
                if r["first_seen"] is not None}  # a placeholder is no row yet

    def set_leader(self, lock: str, client_id: str, url: str | None, since: float) -> None:
        """Record that ``client_id`` (HTTP API at ``url``) now holds the leader lock."""
        try:
            self._exec(self._db(), _upsert("leader", ("lock", "client_id", "url", "since"),
                                           ("lock",)), (lock, client_id, url, since))
        except self.errors as exc:
            raise self._fail("write", exc) from None

    def leader(self, lock: str) -> tuple[str, str | None] | None:
        """(client id, HTTP URL) of the replica that took the leader lock last."""
        rows = self._rows("SELECT client_id, url FROM leader WHERE lock = ?", (lock,))
        return (rows[0]["client_id"], rows[0]["url"]) if rows else None

    # -- reads -----------------------------------------------------------------------------
    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._fetch(self._db(), sql, args)
        except self.errors as exc:
            raise self._fail("read", exc) from None

    def devices(self) -> list[DeviceRow]:
        seqs: dict[str, dict[str, SeqTracker]] = {}
        for s in self._rows("SELECT device, stream, state_json FROM streams"):
            seqs.setdefault(s["device"], {})[s["stream"]] = SeqTracker.from_state(
                json.loads(s["state_json"]))
        return [self._device(r, seqs.get(r["device"], {}))
                for r in self._rows("SELECT * FROM devices WHERE first_seen IS NOT NULL "
                                    "ORDER BY device")]

    def device(self, device: str) -> DeviceRow | None:
        rows = self._rows("SELECT * FROM devices WHERE device = ? AND first_seen IS NOT NULL",
                          (device,))
        if not rows:
            return None
        seqs = {s["stream"]: SeqTracker.from_state(json.loads(s["state_json"]))
                for s in self._rows("SELECT stream, state_json FROM streams WHERE device = ?",
                                    (device,))}
        return self._device(rows[0], seqs)

    def device_views(self) -> list[tuple[str, bool | None, str | None, tuple[str, ...],
                                         float | None]]:
        """(device, online, active model, groups, last seen) of every device: what a rollout
        needs, without the seq trackers."""
        return [(r["device"], None if r["online"] is None else bool(r["online"]), r["active"],
                 _groups(r["groups_json"]), r["last_seen"])
                for r in self._rows("SELECT device, online, active, groups_json, last_seen FROM "
                                    "devices WHERE first_seen IS NOT NULL ORDER BY device")]

    def device_counts(self) -> list[tuple[bool | None, str | None, str | None, str | None,
                                          int]]:
        """(online, active, model, version, how many devices) for every combination (what
        ``/metrics`` shows, counted by the database: no row is read into Python)."""
        return [(None if r["online"] is None else bool(r["online"]), r["active"], r["model"],
                 r["version"], int(r["n"]))
                for r in self._rows("SELECT online, active, model, version, COUNT(*) AS n FROM "
                                    "devices WHERE first_seen IS NOT NULL GROUP BY online, "
                                    "active, model, version")]

    @staticmethod
    def _device(r: Row, seqs: dict[str, SeqTracker]) -> DeviceRow:
        return DeviceRow.from_state({
            "device": r["device"], "online": None if r["online"] is None else bool(r["online"]),
            "model": r["model"], "version": r["version"], "active": r["active"],
            "agent_version": r["agent_version"], "groups": json.loads(r["groups_json"]),
            "summary": json.loads(r["summary_json"]), "first_seen": r["first_seen"],
            "last_seen": r["last_seen"], "rev": r["rev"]}, seqs)

    def update_history(self, device: str, limit: int = 50) -> list[UpdateRecord]:
        rows = self._rows("SELECT * FROM update_records WHERE device = ? ORDER BY seq DESC "
                          "LIMIT ?", (device, limit))
        return [_update(r) for r in reversed(rows)]

    def updates_since(self, deployments: Collection[str], since: float) -> list[UpdateRecord]:
        """The update records of these deployments received at or after ``since``, in each
        device's seq order (what other replicas ingested, for the rollout leader)."""
        if not deployments:
            return []
        marks = ", ".join("?" * len(deployments))
        return [_update(r) for r in self._rows(
            f"SELECT * FROM update_records WHERE deployment IN ({marks}) AND received_at >= ? "
            "ORDER BY device, seq", (*sorted(deployments), since))]

    def rollouts(self, active_only: bool = False) -> list[Rollout]:
        where = " WHERE state NOT IN ('finished', 'aborted')" if active_only else ""
        return [Rollout.from_json(json.loads(r["doc_json"])) for r in
                self._rows(f"SELECT doc_json FROM rollouts{where} ORDER BY created_at, id")]

    def rollout(self, rollout_id: str) -> Rollout | None:
        rows = self._rows("SELECT doc_json FROM rollouts WHERE id = ?", (rollout_id,))
        return Rollout.from_json(json.loads(rows[0]["doc_json"])) if rows else None

    def commands(self, *, rollout: str | None = None, unsent: bool = False,
                 replied_since: float | None = None) -> list[CommandRow]:
        sql, args = "SELECT * FROM commands WHERE 1=1", list[Any]()
        if rollout is not None:
            sql += " AND rollout = ?"
            args.append(rollout)
        if unsent:
            sql += " AND sent_at IS NULL AND reply_json IS NULL"
        if replied_since is not None:
            sql += " AND replied_at >= ?"
            args.append(replied_since)
        return [CommandRow(r["device"], r["id"], r["name"], r["rollout"],
                           json.loads(r["body_json"]), r["created_at"], r["sent_at"],
                           json.loads(r["reply_json"]) if r["reply_json"] else None,
                           r["replied_at"])
                for r in self._rows(sql + " ORDER BY created_at, device", args)]

    def lost_by_stream(self) -> list[tuple[str, str, int, int, int]]:
        """(device, stream, missing, reported lost, duplicates) of every stream with any."""
        return [(r["device"], r["stream"], r["missing"], r["reported_lost"], r["duplicates"])
                for r in self._rows("SELECT device, stream, missing, reported_lost, duplicates "
                                    "FROM streams WHERE stream != 'status' AND (missing > 0 OR "
                                    "reported_lost > 0 OR duplicates > 0) ORDER BY device, "
                                    "stream")]


@functools.lru_cache(maxsize=1024)
def _groups(text: str) -> tuple[str, ...]:
    """A device's stored groups (most devices share a few lists: parsed once each)."""
    return tuple(json.loads(text))


def _update(r: Row) -> UpdateRecord:
    return UpdateRecord(r["device"], r["seq"], r["ts"], r["deployment"], r["model"],
                        r["version"], r["state"], bool(r["final"]), r["reason"], r["detail"],
                        r["received_at"])
