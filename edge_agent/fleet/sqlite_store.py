"""The fleet store on SQLite (the embedded default): WAL, ``synchronous=FULL``, migrations.

One connection per thread (WAL: readers never block the writer); writes are serialised by a
lock and each :class:`~.store.Batch` is one transaction. A database made by a newer edge-agent
(a higher schema version than this one knows) is refused, never changed.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..mqtt.fleet import DeviceRow, SeqTracker
from .errors import FleetStoreError
from .rollout import Rollout
from .store import UPDATE_HISTORY, Batch, CommandRow, UpdateRecord, migrations


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FleetStoreError(f"fleet database {path}: cannot create its folder: "
                                  f"{exc.strerror}") from None
        self._migrate()

    # -- connections -----------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise FleetStoreError(f"fleet database {self.path}: cannot open it: {exc}; "
                                      "check the path, its permissions and free space") from None
            self._local.db = db
            self._all.append(db)
        return db

    def close(self) -> None:
        for db in self._all:
            try:
                db.close()
            except sqlite3.Error:
                pass
        self._all.clear()
        self._local = threading.local()

    def _fail(self, what: str, exc: sqlite3.Error) -> FleetStoreError:
        return FleetStoreError(f"fleet database {self.path}: {what} failed: {exc}")

    # -- migrations ------------------------------------------------------------------------
    def _migrate(self) -> None:
        db = self._db()
        known = migrations()
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                       "KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
            have = self.schema_version()
            if have > len(known):
                raise FleetStoreError(
                    f"fleet database {self.path}: schema version {have} is newer than this "
                    f"edge-agent knows ({len(known)}); run the newer edge-agent or restore a "
                    "backup")
            for m in known[have:]:
                with _transaction(db):
                    for stmt in m.statements():
                        db.execute(stmt)
                    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                               (m.version, m.name, time.time()))
        except sqlite3.DatabaseError as exc:
            raise self._fail("migration", exc) from None

    def schema_version(self) -> int:
        row = self._db().execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    # -- writes ----------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        if not batch:
            return
        db = self._db()
        with self._write_lock:
            try:
                with _transaction(db):
                    self._write(db, batch)
            except sqlite3.Error as exc:
                raise self._fail("write", exc) from None

    def _write(self, db: sqlite3.Connection, b: Batch) -> None:
        for row in b.rows:
            st = row.state()
            db.execute(
                "INSERT INTO devices (device, online, model, version, active, agent_version, "
                "groups_json, summary_json, first_seen, last_seen, missing, reported_lost, "
                "duplicates) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (device) DO UPDATE "
                "SET online=excluded.online, model=excluded.model, version=excluded.version, "
                "active=excluded.active, agent_version=excluded.agent_version, "
                "groups_json=excluded.groups_json, summary_json=excluded.summary_json, "
                "last_seen=excluded.last_seen, missing=excluded.missing, "
                "reported_lost=excluded.reported_lost, duplicates=excluded.duplicates",
                (row.device, None if row.online is None else int(row.online), row.model,
                 row.version, row.active, row.agent_version, json.dumps(st["groups"]),
                 json.dumps(st["summary"]), row.first_seen, row.last_seen, row.gaps, row.lost,
                 row.duplicates))
            for name, t in row.seqs.items():
                db.execute(
                    "INSERT INTO streams (device, stream, state_json, received, missing, "
                    "reported_lost, duplicates, last_seq) VALUES (?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (device, stream) DO UPDATE SET state_json=excluded.state_json, "
                    "received=excluded.received, missing=excluded.missing, "
                    "reported_lost=excluded.reported_lost, duplicates=excluded.duplicates, "
                    "last_seq=excluded.last_seq",
                    (row.device, name, json.dumps(t.state()), t.received, t.gaps, t.lost,
                     t.duplicates, t.last))
        touched = set()
        for u in b.updates:
            db.execute(
                "INSERT INTO update_records (device, seq, ts, deployment, model, version, "
                "state, final, reason, detail, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (device, seq) DO NOTHING",
                (u.device, u.seq, u.ts, u.deployment, u.model, u.version, u.state,
                 int(u.final), u.reason, u.detail, u.received_at))
            touched.add(u.device)
        for dev in touched:
            db.execute(
                "DELETE FROM update_records WHERE device = ? AND seq < (SELECT seq FROM "
                "update_records WHERE device = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (dev, dev, UPDATE_HISTORY - 1))
        for r in b.rollouts:
            db.execute(
                "INSERT INTO rollouts (id, created_at, state, doc_json) VALUES (?,?,?,?) "
                "ON CONFLICT (id) DO UPDATE SET state=excluded.state, doc_json=excluded.doc_json",
                (r.id, r.created_at, r.state, json.dumps(r.to_json())))
        for c in b.commands:
            db.execute(
                "INSERT INTO commands (device, id, name, rollout, body_json, created_at) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (device, id) DO NOTHING",
                (c.device, c.id, c.name, c.rollout, json.dumps(c.body), c.created_at))
        for dev, cid, ts in b.sent:
            db.execute("UPDATE commands SET sent_at = ? WHERE device = ? AND id = ? AND "
                       "sent_at IS NULL", (ts, dev, cid))
        for dev, cid, reply, ts in b.replies:
            db.execute("UPDATE commands SET reply_json = ?, replied_at = ? WHERE device = ? "
                       "AND id = ? AND reply_json IS NULL", (json.dumps(reply), ts, dev, cid))

    # -- reads -----------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        db = self._db()
        db.row_factory = sqlite3.Row
        try:
            return list(db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise self._fail("read", exc) from None

    def devices(self) -> list[DeviceRow]:
        seqs: dict[str, dict[str, SeqTracker]] = {}
        for s in self._rows("SELECT device, stream, state_json FROM streams"):
            seqs.setdefault(s["device"], {})[s["stream"]] = SeqTracker.from_state(
                json.loads(s["state_json"]))
        return [self._device(r, seqs.get(r["device"], {}))
                for r in self._rows("SELECT * FROM devices ORDER BY device")]

    def device(self, device: str) -> DeviceRow | None:
        rows = self._rows("SELECT * FROM devices WHERE device = ?", (device,))
        if not rows:
            return None
        seqs = {s["stream"]: SeqTracker.from_state(json.loads(s["state_json"]))
                for s in self._rows("SELECT stream, state_json FROM streams WHERE device = ?",
                                    (device,))}
        return self._device(rows[0], seqs)

    @staticmethod
    def _device(r: sqlite3.Row, seqs: dict[str, SeqTracker]) -> DeviceRow:
        return DeviceRow.from_state({
            "device": r["device"], "online": None if r["online"] is None else bool(r["online"]),
            "model": r["model"], "version": r["version"], "active": r["active"],
            "agent_version": r["agent_version"], "groups": json.loads(r["groups_json"]),
            "summary": json.loads(r["summary_json"]), "first_seen": r["first_seen"],
            "last_seen": r["last_seen"]}, seqs)

    def update_history(self, device: str, limit: int = 50) -> list[UpdateRecord]:
        rows = self._rows("SELECT * FROM update_records WHERE device = ? ORDER BY seq DESC "
                          "LIMIT ?", (device, limit))
        return [UpdateRecord(r["device"], r["seq"], r["ts"], r["deployment"], r["model"],
                             r["version"], r["state"], bool(r["final"]), r["reason"],
                             r["detail"], r["received_at"]) for r in reversed(rows)]

    def rollouts(self, active_only: bool = False) -> list[Rollout]:
        where = " WHERE state NOT IN ('finished', 'aborted')" if active_only else ""
        return [Rollout.from_json(json.loads(r["doc_json"])) for r in
                self._rows(f"SELECT doc_json FROM rollouts{where} ORDER BY created_at, id")]

    def rollout(self, rollout_id: str) -> Rollout | None:
        rows = self._rows("SELECT doc_json FROM rollouts WHERE id = ?", (rollout_id,))
        return Rollout.from_json(json.loads(rows[0]["doc_json"])) if rows else None

    def commands(self, *, rollout: str | None = None, unsent: bool = False
                 ) -> list[CommandRow]:
        sql, args = "SELECT * FROM commands WHERE 1=1", []
        if rollout is not None:
            sql += " AND rollout = ?"
            args.append(rollout)
        if unsent:
            sql += " AND sent_at IS NULL AND reply_json IS NULL"
        return [CommandRow(r["device"], r["id"], r["name"], r["rollout"],
                           json.loads(r["body_json"]), r["created_at"], r["sent_at"],
                           json.loads(r["reply_json"]) if r["reply_json"] else None,
                           r["replied_at"])
                for r in self._rows(sql + " ORDER BY created_at, device", tuple(args))]

    def lost_by_stream(self) -> list[tuple[str, str, int, int, int]]:
        """(device, stream, missing, reported lost, duplicates) of every stream with any."""
        return [(r["device"], r["stream"], r["missing"], r["reported_lost"], r["duplicates"])
                for r in self._rows("SELECT device, stream, missing, reported_lost, duplicates "
                                    "FROM streams WHERE stream != 'status' AND (missing > 0 OR "
                                    "reported_lost > 0 OR duplicates > 0) ORDER BY device, "
                                    "stream")]
