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

A record that cannot be stored (disk full, I/O error) still consumes its seq: the seqs live
in memory and in the preallocated ``seq.ledger`` (:mod:`.seqledger`) until the database can
commit again; the first commit that succeeds writes the advanced seqs and one *gap record*
per lost range (``{"seq": n, "gap": {"from", "to", "count", "reason"}}``) before anything
else, so a consumer sees the loss. ``degrade=True``: an outbox that cannot be opened (disk
full at start) is not fatal — records are counted as lost (the seqs they consume are given
when it opens), :meth:`retry_open` tries again.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OutboxCorrupt, OutboxError, RecordNotStored
from .seqledger import LedgerState, SeqLedger

log = logging.getLogger("edge_agent.mqtt")

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


def _reply_problem(rid: Any, ts: Any, body: Any) -> str | None:
    """Why a ``replies`` row cannot be used (None: it can)."""
    if not isinstance(rid, str) or not rid:
        return f"id is {type(rid).__name__}, not text"
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return f"id {rid[:40]!r}: time {str(ts)[:40]!r} is not a finite number"
    if not isinstance(body, str):
        return f"id {rid[:40]!r}: reply is {type(body).__name__}, not JSON text"
    try:
        value = json.loads(body)
    except ValueError:
        return f"id {rid[:40]!r}: reply is not JSON"
    if not isinstance(value, dict):
        return f"id {rid[:40]!r}: reply is a JSON {type(value).__name__}, not an object"
    return None


PLAUSIBLE_EPOCH = 1_577_836_800.0  # 2020-01-01: earlier stamps mean "clock not set yet"
DISK_FULL_NAMES = frozenset({"SQLITE_FULL", "SQLITE_IOERR_SHMSIZE", "SQLITE_IOERR_WRITE"})

GapRecord = Callable[[str, int, dict[str, Any]], tuple[str, bytes]]
"""``(stream, seq, gap) -> (topic, payload)`` of the record that reports a lost range."""


def failure_reason(exc: BaseException) -> str:
    """``disk_full`` for ENOSPC (SQLite's FULL, or the shared-memory file it cannot grow),
    else ``write_error``."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in DISK_FULL_NAMES or "disk is full" in str(exc):
        return "disk_full"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "disk_full"
    return "write_error"


def default_gap_record(stream: str, seq: int, gap: dict[str, Any]) -> tuple[str, bytes]:
    return stream, json.dumps({"seq": seq, "gap": gap}, separators=(",", ":")).encode()


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
        self,
        path: Path,
        caps: Caps | None = None,
        clock: Callable[[], float] = time.time,
        *,
        gap_record: GapRecord = default_gap_record,
        degrade: bool = False,
    ) -> None:
        self.path = Path(path)
        self.replies_damaged = 0  # rows of the reply table found damaged (and dropped)
        self.caps = caps or Caps()
        self.clock = clock
        self.gap_record = gap_record
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._count = self._bytes = 0
        self.open_error = ""
        self.open_reason = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # _connect reports it
        self.ledger = SeqLedger(self.path.with_name("seq.ledger"))
        self._pending = self.ledger.load()  # losses a previous run could not report yet
        self._seqs: dict[str, int] = dict(self._pending.seqs)  # last seq given, per stream
        self._dirty: set[str] = set()  # streams whose seq in memory is ahead of the database
        self.ledger.ensure()  # made at full size now, while there may still be space
        try:
            self._connect()
        except OutboxCorrupt:
            self.ledger.close()
            raise
        except OutboxError as exc:
            if not degrade:
                self.ledger.close()
                raise
            self.open_error = str(exc)
            return
        with self._lock:
            self._adopt()

    def _connect(self) -> None:
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=10
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            row = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            self.open_reason = failure_reason(exc)
            if isinstance(exc, sqlite3.OperationalError):  # permissions, locked, disk full
                why = " (disk full)" if self.open_reason == "disk_full" else ""
                raise OutboxError(
                    f"{self.path}: cannot open the MQTT outbox{why}: {exc}"
                ) from None
            raise OutboxCorrupt(f"{self.path}: the MQTT outbox is damaged: {exc}") from None
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            self.open_reason = failure_reason(exc)
            why = " (disk full)" if self.open_reason == "disk_full" else ""
            raise OutboxError(f"{self.path}: cannot open the MQTT outbox{why}: {exc}") from None
        self._db = db
        self._count, self._bytes = int(row[0]), int(row[1])
        self.open_error = self.open_reason = ""

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def retry_open(self) -> bool:
        """Try to open an outbox that could not be opened; True once it is open."""
        with self._lock:
            if self._db is not None:
                return True
            try:
                self._connect()
            except OutboxError as exc:
                self.open_error = str(exc)
                return False
            self._adopt()
            return True

    @classmethod
    def open_or_reset(
        cls,
        path: Path,
        caps: Caps | None = None,
        clock: Callable[[], float] = time.time,
        **kw: Any,
    ) -> tuple[Outbox, Path | None]:
        """Open the outbox; a damaged file is moved aside (returned) and a new one started.

        The agent keeps reporting rather than stopping over a file nobody can read any more.
        """
        try:
            return cls(path, caps, clock, **kw), None
        except OutboxCorrupt:
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{path}{suffix}")
                if src.exists():
                    src.rename(Path(f"{aside}{suffix}"))
            return cls(path, caps, clock, **kw), aside

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
        A record that cannot be stored raises :class:`RecordNotStored` and still consumes
        its seq (reported later as a gap); ``build`` raising consumes none.
        """
        with self._lock:
            if self._db is None:
                self._pending.add_unsequenced(stream, self.open_reason or "write_error")
                self._save_ledger()
                raise RecordNotStored(
                    f"MQTT {stream} record not stored: {self.open_error}",
                    stream,
                    None,
                    self.open_reason or "write_error",
                )
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seqs = self._write_pending()
                seq = seqs.get(stream, 0) + 1
                payload = build(seq)
                self._db.execute(
                    "INSERT INTO records (stream, topic, payload, retain, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (stream, topic, payload, int(retain), self.clock()),
                )
                self._store_seq(stream, seq)
                self._count += 1
                self._bytes += len(payload)
                self._enforce_caps()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                seq = self._lose(stream, failure_reason(exc))
                raise RecordNotStored(
                    f"{self.path}: cannot store MQTT {stream} record seq {seq}: {exc}",
                    stream,
                    seq,
                    failure_reason(exc),
                ) from None
            except BaseException:
                self._rollback()  # build() failed: no seq consumed, nothing stored
                raise
            seqs[stream] = seq
            self._committed(seqs)
            return seq

    def next_seq(self, stream: str) -> int:
        """A seq for a record that does not go through the outbox (status, will).

        Never fails: when the database cannot commit, the seq is counted in memory (and the
        ledger) and written with the next commit that succeeds."""
        with self._lock:
            if self._db is not None:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    seqs = self._write_pending()
                    seq = seqs.get(stream, 0) + 1
                    self._store_seq(stream, seq)
                    self._db.execute("COMMIT")
                except sqlite3.Error:
                    self._rollback()
                else:
                    seqs[stream] = seq
                    self._committed(seqs)
                    return seq
            seq = self._seqs.get(stream, 0) + 1
            self._seqs[stream] = seq
            self._dirty.add(stream)
            self._save_ledger()
            return seq

    def delete(self, ids: Iterable[int]) -> int:
        """Remove acknowledged records (one transaction for the batch)."""
        ids = list(ids)
        if not ids or self._db is None:
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
            if self._db is None:
                return 0
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
            if self._db is None:
                return []
            rows = self._db.execute(
                "SELECT id, stream, topic, payload, retain, created FROM records "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Record(r[0], r[1], r[2], bytes(r[3]), bool(r[4]), r[5]) for r in rows]

    def seq(self, stream: str) -> int:
        """The last seq given on ``stream`` (stored or lost)."""
        with self._lock:
            return self._seqs.get(stream, 0)

    def unstored(self) -> int:
        """Records lost and not yet reported by a gap record."""
        with self._lock:
            return self._unstored()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {"open": self._db is not None}
            dropped: dict[str, Any] = {}
            oldest = None
            if self._db is not None:
                try:
                    dropped = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
                    oldest = self._db.execute("SELECT MIN(created) FROM records").fetchone()[0]
                except sqlite3.Error as exc:
                    out["error"] = str(exc)
            else:
                out["error"] = self.open_error
            unstored = self._unstored()
            ledger_error = self.ledger.error
        out.update(
            pending=self._count,
            pending_bytes=self._bytes,
            oldest_age_s=round(self.clock() - oldest, 1) if oldest is not None else 0.0,
            dropped={k: int(v) for k, v in sorted(dropped.items())},
        )
        if unstored:
            out["unstored"] = unstored  # lost, gap record not published yet
        if ledger_error:
            out["ledger_error"] = ledger_error
        return out

    def __len__(self) -> int:
        return self._count

    # -- command replies -------------------------------------------------------------------
    def load_replies(self) -> list[tuple[str, float, dict[str, Any]]]:
        """The remembered replies. A row that is not (text id, finite time, JSON object) is
        damage: it is logged naming this file and deleted (:attr:`replies_damaged` counts them);
        the others load."""
        with self._lock:
            if self._db is None:
                return []
            rows = self._db.execute(
                "SELECT rowid, id, ts, reply FROM replies ORDER BY rowid"
            ).fetchall()
        good: list[tuple[str, float, dict[str, Any]]] = []
        bad: list[tuple[int, str]] = []
        for rowid, rid, ts, body in rows:
            why = _reply_problem(rid, ts, body)
            if why is None:
                good.append((rid, float(ts), json.loads(body)))
            else:
                bad.append((rowid, why))
        if bad:
            self.replies_damaged += len(bad)
            self._forget_damaged_replies(bad)
        return sorted(good, key=lambda r: r[1])

    def _forget_damaged_replies(self, bad: list[tuple[int, str]]) -> None:
        rowid, why = bad[0]
        log.error(
            "%s: %d damaged row(s) in the command reply table (first: rowid %d, %s); "
            "dropped, the agent goes on (a repeated command id among them runs again)",
            self.path, len(bad), rowid, why,
        )
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM replies WHERE rowid = ?", [(r,) for r, _ in bad])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                log.error("%s: could not drop the damaged reply rows: %s", self.path, exc)

    def save_reply(self, req_id: str, ts: float, reply: dict[str, Any], forget: list[str]) -> None:
        with self._lock:
            if self._db is None:
                raise OutboxError(f"cannot store a command reply: {self.open_error}")
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
            if self._db is not None:
                self._db.close()
                self._db = None
            self.ledger.close()

    # -- seqs and losses (called with the lock held) -----------------------------------------
    def _adopt(self) -> None:
        """Just opened: seqs are the highest of database, ledger and memory; losses the
        database has not reported yet stay pending; records lost while it was not open get
        their seqs now."""
        assert self._db is not None
        stored = {str(k): int(v) for k, v in self._db.execute("SELECT stream, value FROM seqs")}
        old = self._pending
        state = LedgerState()
        streams = set(stored) | set(self._seqs) | set(old.lost) | set(old.unsequenced)
        for stream in sorted(streams):
            db_seq = stored.get(stream, 0)
            seq = max(db_seq, self._seqs.get(stream, 0))
            # a range the database has passed was reported in the same commit that passed it
            ranges = [
                [max(a, db_seq + 1), b, r] for a, b, r in old.lost.get(stream, []) if b > db_seq
            ]
            seq = max([seq, *(b for _, b, _ in ranges)])
            if ranges:
                state.lost[stream] = ranges
            n, reason = old.unsequenced.get(stream, [0, ""])
            for _ in range(n):
                seq += 1
                state.add_lost(stream, seq, reason)
            self._seqs[stream] = seq
            if seq > db_seq:
                self._dirty.add(stream)
        state.seqs = dict(self._seqs)
        self._pending = state
        if state.empty() and not self._dirty:
            return
        self._save_ledger()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            seqs = self._write_pending()
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()  # still full: the next append tries again
        else:
            self._committed(seqs)

    def _write_pending(self) -> dict[str, int]:
        """Inside a transaction: one gap record per lost range, and the seqs that memory has
        ahead of the database. Returns the seqs as they will be after the commit."""
        assert self._db is not None
        seqs = dict(self._seqs)
        now = self.clock()
        for stream, ranges in sorted(self._pending.lost.items()):
            for a, b, reason in ranges:
                seq = seqs.get(stream, 0) + 1
                gap = {"from": a, "to": b, "count": b - a + 1, "reason": reason}
                topic, payload = self.gap_record(stream, seq, gap)
                self._db.execute(
                    "INSERT INTO records (stream, topic, payload, retain, created) "
                    "VALUES (?, ?, ?, 0, ?)",
                    (stream, topic, payload, now),
                )
                self._count += 1
                self._bytes += len(payload)
                self._db.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (f"{stream}.{reason}", b - a + 1),
                )
                seqs[stream] = seq
                self._dirty.add(stream)
        for stream in sorted(self._dirty):
            self._store_seq(stream, seqs[stream])
        return seqs

    def _store_seq(self, stream: str, seq: int) -> None:
        assert self._db is not None
        self._db.execute(
            "INSERT INTO seqs (stream, value) VALUES (?, ?) "
            "ON CONFLICT(stream) DO UPDATE SET value = excluded.value",
            (stream, seq),
        )

    def _committed(self, seqs: dict[str, int]) -> None:
        self._seqs = seqs
        if self._dirty or not self._pending.empty():
            self._dirty.clear()
            self._pending = LedgerState(seqs=dict(seqs))
            self._save_ledger()  # stale content would be harmless (see _adopt), clear it anyway

    def _lose(self, stream: str, reason: str) -> int:
        seq = self._seqs.get(stream, 0) + 1
        self._seqs[stream] = seq
        self._dirty.add(stream)
        self._pending.add_lost(stream, seq, reason)
        self._save_ledger()
        return seq

    def _save_ledger(self) -> None:
        self._pending.seqs = dict(self._seqs)
        self.ledger.save(self._pending)

    def _unstored(self) -> int:
        lost = sum(b - a + 1 for ranges in self._pending.lost.values() for a, b, _ in ranges)
        return lost + sum(n for n, _ in self._pending.unsequenced.values())

    # -- internals (called with the lock held, inside a transaction) ------------------------
    @property
    def _sql(self) -> sqlite3.Connection:
        assert self._db is not None, "outbox not open"
        return self._db


    def _delete_where(self, where: str, args: list[Any]) -> tuple[int, int]:
        row = self._sql.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records WHERE {where}", args
        ).fetchone()
        if row[0]:
            self._sql.execute(f"DELETE FROM records WHERE {where}", args)
        self._count -= int(row[0])
        self._bytes -= int(row[1])
        return int(row[0]), int(row[1])

    def _drop_where(self, where: str, args: list[Any], reason: str) -> int:
        per_stream = self._sql.execute(
            f"SELECT stream, COUNT(*) FROM records WHERE {where} GROUP BY stream", args
        ).fetchall()
        for stream, n in per_stream:
            self._sql.execute(
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
            rows = self._sql.execute("SELECT id, LENGTH(payload) FROM records ORDER BY id")
            excess, cut = self._bytes - self.caps.max_bytes, 0
            for rid, size in rows:
                excess -= size
                cut = rid
                if excess <= 0:
                    break
            self._drop_where("id <= ?", [cut], "bytes")

    def _rollback(self) -> None:
        if self._db is None:
            return
        try:
            self._sql.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        # counts may be off after a failed transaction: re-read them
        try:
            row = self._sql.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records"
            ).fetchone()
            self._count, self._bytes = int(row[0]), int(row[1])
        except sqlite3.Error:
            pass
