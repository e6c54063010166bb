"""The fleet store on SQLite (the embedded default): WAL, ``synchronous=FULL``.

One connection per thread (WAL: readers never block the writer); writes are serialised by a
lock and each :class:`~.store.Batch` is one ``BEGIN IMMEDIATE`` transaction. One ``fleet
serve`` per file: replicas need PostgreSQL (:mod:`.postgres_store`). The SQL is
:mod:`.sql_store`'s, shared with PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .errors import FleetStoreError
from .sql_store import SqlStore


class SqliteStore(SqlStore):
    errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FleetStoreError(f"fleet database {path}: cannot create its folder: "
                                  f"{exc.strerror}") from None
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise FleetStoreError(f"fleet database {self.path}: cannot open it: {exc}; "
                                  "check the path, its permissions and free space") from None
        return db

    def _begin(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
