"""The on-disk outbox: QoS 1 records wait here (SQLite, WAL) until the broker acknowledges them.

One file ``<state_dir>/mqtt/outbox.sqlite`` holds

- ``records``: records not yet acknowledged, in publish order (``id`` increases);
- ``seqs``: the last ``seq`` given per stream, bumped in the same transaction as the record,
  so a seq is never reused after a crash or a restart;
- ``counters``: records dropped by the caps (per stream and reason), kept across restarts;
- ``replies``: replies to recent command ids (idempotency across restarts).

Commits are ``synchronous=FULL``: a record that :meth:`Outbox.append` returned survives
``kill -9`` and power loss. Caps: ``max_records``, ``max_bytes`` and ``max_age_s``; when one is
exceeded the *oldest* records are dropped and counted, never silently.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OutboxCorrupt, OutboxError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seqs (stream TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS replies (id TEXT PRIMARY KEY, ts REAL NOT NULL, reply TEXT NOT NULL);
"""


PLAUSIBLE_EPOCH = 1_577_836_800.0  # 2020-01-01: earlier stamps mean "clock not set yet"


@dataclass(frozen=True)
class Record:
    id: int
    stream: str
    topic: str
    payload: bytes
    retain: bool
    created: float


@dataclass(frozen=True)
class Caps:
    max_records: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    max_age_s: float = 7 * 24 * 3600


class Outbox:
    """Thread-safe (one connection behind a lock). ``clock`` is passed in for tests."""

    def __init__(
        self, path: Path, caps: Caps | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.caps = caps or Caps()
        self.clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # permissions, locked, disk full
                raise OutboxError(f"{self.path}: cannot open the MQTT outbox: {exc}") from None
            raise OutboxCorrupt(f"{self.path}: the MQTT outbox is damaged: {exc}") from None
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"{self.path}: cannot open the MQTT outbox: {exc}") from None
        self._count, self._bytes = int(row[0]), int(row[1])

    @classmethod
    def open_or_reset(
        cls, path: Path, caps: Caps | None = None, clock: Callable[[], float] = time.time
    ) -> tuple[Outbox, Path | None]:
        """Open the outbox; a damaged file is moved aside (returned) and a new one started.

        The agent keeps reporting rather than stopping over a file nobody can read any more.
        """
        try:
            return cls(path, caps, clock), None
        except OutboxCorrupt:
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{path}{suffix}")
                if src.exists():
                    src.rename(Path(f"{aside}{suffix}"))
            return cls(path, caps, clock), aside

    # -- writing ---------------------------------------------------------------------------
    def append(
        self,
        stream: str,
        topic: str,
        build: Callable[[int], bytes],
        retain: bool = False,
    ) -> int:
        """Give the next ``seq`` of ``stream``, store ``build(seq)``; return the seq.

        Both happen in one transaction: after a crash either both are on disk or neither.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = self._bump_seq(stream)
                payload = build(seq)
                self._db.execute(
                    "INSERT INTO records (stream, topic, payload, retain, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (stream, topic, payload, int(retain), self.clock()),
                )
                self._count += 1
                self._bytes += len(payload)
                self._enforce_caps()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: cannot store an MQTT record: {exc}") from None
            except BaseException:
                self._rollback()  # build() failed: no seq consumed, nothing stored
                raise
            return seq

    def next_seq(self, stream: str) -> int:
        """A seq for a record that does not go through the outbox (status, will)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = self._bump_seq(stream)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: cannot store a seq: {exc}") from None
            return seq

    def delete(self, ids: Iterable[int]) -> int:
        """Remove acknowledged records (one transaction for the batch)."""
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                removed, _size = self._delete_where(f"id IN ({','.join('?' * len(ids))})", ids)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: cannot remove sent records: {exc}") from None
            return removed

    def expire(self) -> int:
        """Drop (and count) records older than ``max_age_s``.

        Records stamped before :data:`PLAUSIBLE_EPOCH` were made while the clock was not set
        (a board without RTC before NTP): their age is unknown, so only the record and byte
        caps apply to them — otherwise setting the clock would throw them all away.
        """
        now = self.clock()
        if now < PLAUSIBLE_EPOCH:
            return 0  # our own clock is not set: no age can be trusted
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                n = self._drop_where(
                    "created < ? AND created >= ?",
                    [now - self.caps.max_age_s, PLAUSIBLE_EPOCH],
                    "age",
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: cannot expire records: {exc}") from None
            return n

    # -- reading ---------------------------------------------------------------------------
    def fetch(self, after_id: int = 0, limit: int = 100) -> list[Record]:
        """Records with ``id > after_id`` in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, stream, topic, payload, retain, created FROM records "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Record(r[0], r[1], r[2], bytes(r[3]), bool(r[4]), r[5]) for r in rows]

    def seq(self, stream: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM seqs WHERE stream = ?", (stream,)).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            dropped = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            oldest = self._db.execute("SELECT MIN(created) FROM records").fetchone()[0]
        return {
            "pending": self._count,
            "pending_bytes": self._bytes,
            "oldest_age_s": round(self.clock() - oldest, 1) if oldest is not None else 0.0,
            "dropped": {k: int(v) for k, v in sorted(dropped.items())},
        }

    def __len__(self) -> int:
        return self._count

    # -- command replies -------------------------------------------------------------------
    def load_replies(self) -> list[tuple[str, float, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT id, ts, reply FROM replies ORDER BY ts").fetchall()
        return [(r[0], float(r[1]), json.loads(r[2])) for r in rows]

    def save_reply(self, req_id: str, ts: float, reply: dict[str, Any], forget: list[str]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT OR REPLACE INTO replies (id, ts, reply) VALUES (?, ?, ?)",
                    (req_id, ts, json.dumps(reply)),
                )
                self._db.executemany("DELETE FROM replies WHERE id = ?", [(f,) for f in forget])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: cannot store a command reply: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals (called with the lock held, inside a transaction) ------------------------
    def _bump_seq(self, stream: str) -> int:
        self._db.execute(
            "INSERT INTO seqs (stream, value) VALUES (?, 1) "
            "ON CONFLICT(stream) DO UPDATE SET value = value + 1",
            (stream,),
        )
        row = self._db.execute("SELECT value FROM seqs WHERE stream = ?", (stream,)).fetchone()
        return int(row[0])

    def _delete_where(self, where: str, args: list[Any]) -> tuple[int, int]:
        row = self._db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records WHERE {where}", args
        ).fetchone()
        if row[0]:
            self._db.execute(f"DELETE FROM records WHERE {where}", args)
        self._count -= int(row[0])
        self._bytes -= int(row[1])
        return int(row[0]), int(row[1])

    def _drop_where(self, where: str, args: list[Any], reason: str) -> int:
        per_stream = self._db.execute(
            f"SELECT stream, COUNT(*) FROM records WHERE {where} GROUP BY stream", args
        ).fetchall()
        for stream, n in per_stream:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (f"{stream}.{reason}", n),
            )
        removed, _ = self._delete_where(where, args)
        return removed

    def _enforce_caps(self) -> None:
        over = self._count - self.caps.max_records
        if over > 0:
            self._drop_where(
                "id IN (SELECT id FROM records ORDER BY id LIMIT ?)", [over], "records"
            )
        if self._bytes > self.caps.max_bytes:
            # oldest first until the total fits
            rows = self._db.execute("SELECT id, LENGTH(payload) FROM records ORDER BY id")
            excess, cut = self._bytes - self.caps.max_bytes, 0
            for rid, size in rows:
                excess -= size
                cut = rid
                if excess <= 0:
                    break
            self._drop_where("id <= ?", [cut], "bytes")

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        # counts may be off after a failed transaction: re-read them
        try:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records"
            ).fetchone()
            self._count, self._bytes = int(row[0]), int(row[1])
        except sqlite3.Error:
            pass
