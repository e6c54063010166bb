"""The fleet store on PostgreSQL (psycopg 3): for replicas of ``fleet serve`` and large fleets.

``[fleet] database = "postgresql://user@host:5432/fleet"`` (any libpq URL; keep the password
out of the file: ``PGPASSWORD``, a ``passfile`` or a client certificate — libpq reads them).
The SQL and the migrations are :mod:`.sql_store`'s, the same as SQLite's. Differences:

- several replicas write at once: each keeps the device rows it wrote in memory with their
  revision; a batch locks the rows it changes inside its transaction and reads back only
  their revisions (``SELECT device, rev ... FOR UPDATE``, in device order: no deadlock), and
  reads again just the rows another replica changed since, so two replicas that got records
  of the same device never overwrite each other's seq accounting;
- rows are written in bulk, one statement per table and batch (``INSERT ... SELECT FROM
  unnest(arrays) ON CONFLICT ... DO UPDATE``), not one statement per row;
- migrations hold a transaction-level advisory lock (replicas starting together migrate once);
- :meth:`PostgresStore.lead` takes a session-level advisory lock on the writing connection:
  the rollout leader. It is released when that connection ends (the process died, or the
  network to the database broke), and every rollout write of the leader goes through that
  same connection, so a replica that lost the lock can no longer write as the leader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ..common.extras import pip_hint
from .errors import FleetStoreError
from .sql_store import COLUMN_TYPES, SqlStore

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # the [central] extra brings it
    psycopg = None  # type: ignore[assignment]


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` (stable across processes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def describe(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    try:
        d = conninfo_to_dict(url)
    except Exception:
        return "postgresql://(unparsable URL)"
    user = f"{d['user']}@" if d.get("user") else ""
    port = f":{d['port']}" if d.get("port") else ""
    return f"postgresql://{user}{d.get('host', '')}{port}/{d.get('dbname', '')}"


class PostgresStore(SqlStore):
    placeholder = "%s"
    lock_rows = " FOR UPDATE"
    shared_writers = True

    def __init__(self, url: str, *, connect_timeout: float = 10) -> None:
        if psycopg is None:
            raise FleetStoreError("fleet database postgresql://...: psycopg is not installed; "
                                  + pip_hint("central"))
        self.url = url
        self.where = describe(url)
        self.connect_timeout = connect_timeout
        self.errors = (psycopg.Error,)
        self._leading: set[int] = set()  # id() of the connections holding the leader lock
        super().__init__()

    def _connect(self) -> Any:
        try:
            return psycopg.connect(self.url, autocommit=True,
                                   connect_timeout=max(1, int(self.connect_timeout)),
                                   application_name="edge-fleet-serve")
        except psycopg.Error as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FleetStoreError(f"fleet database {self.where}: cannot connect: {msg}; check "
                                  "the URL, that the server runs and the credentials") from None

    def _exec(self, db: Any, sql: str, args: Any = ()) -> None:
        db.execute(self._sql(sql), tuple(args) or None)

    def _in(self, col: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{col} = ANY(?)", [list(values)]

    def _insert_rows(self, db: Any, table: str, cols: Sequence[str],
                     rows: Sequence[tuple[Any, ...]], tail: str) -> int:
        """One statement for all the rows: ``INSERT ... SELECT FROM unnest(<one array per
        column>)`` (one round trip and one plan, however many rows)."""
        if not rows:
            return 0
        arrays = [list(c) for c in zip(*rows, strict=True)]
        unnest = ", ".join(f"%b::{COLUMN_TYPES[c]}[]" for c in cols)  # binary: no escaping
        cur = db.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT * FROM "
                         f"unnest({unnest}) {tail}", arrays)
        return int(cur.rowcount)

    def _lock_migrations(self, db: Any) -> None:
        db.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("edge-fleet:migrations"),))

    def lead(self, name: str) -> bool:
        """Try to be (or stay) the leader ``name``; True while this replica is."""
        db = self._db()
        if id(db) in self._leading:
            return True
        try:
            got = db.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),)).fetchone()
        except psycopg.Error as exc:
            raise self._fail("leader lock", exc) from None
        if got and got[0]:
            self._leading.add(id(db))
            return True
        return False
