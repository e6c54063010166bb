"""The outbox's delivery order, as pure code: which rows are in flight, the last row handed to
the link, and the acknowledged rows waiting to be deleted in one batch.

The MQTT component's drainer thread feeds it (rows handed, acks as they come back) and asks it
what to delete; no I/O, no threads, no clock of its own (``now`` is passed in). Rows are handed
in outbox order (``last_handed`` is where the next fetch starts); an acknowledged row is deleted
in a batch of ``batch`` rows, or ``flush_s`` after the first ack of the batch, or as soon as
nothing is in flight — and only once the delete happened (:meth:`deleted`), so a delete that
fails (disk full) is tried again rather than forgotten.
"""

from __future__ import annotations

ACK_FLUSH_S = 0.05
ACK_FLUSH_BATCH = 200


class Delivery:
    def __init__(
        self, max_inflight: int, *, flush_s: float = ACK_FLUSH_S, batch: int = ACK_FLUSH_BATCH
    ) -> None:
        self.max_inflight = max_inflight
        self.flush_s = flush_s
        self.batch = batch
        self.inflight: dict[int, int] = {}  # link message id -> outbox row id
        self.last_handed = 0
        self.acked: list[int] = []  # rows acknowledged, not yet deleted
        self._acked_since: float | None = None

    def room(self) -> int:
        """How many more rows may be handed to the link now."""
        return self.max_inflight - len(self.inflight)

    def handed(self, mid: int, row: int) -> None:
        """Row ``row`` went to the link as message ``mid``."""
        self.inflight[mid] = row
        self.last_handed = row

    def ack(self, mid: int, now: float) -> int | None:
        """Message ``mid`` was acknowledged: the row it carried (None: not an outbox row, e.g.
        the retained status or a command reply)."""
        row = self.inflight.pop(mid, None)
        if row is not None:
            if self._acked_since is None:
                self._acked_since = now
            self.acked.append(row)
        return row

    def due(self, now: float, force: bool = False) -> list[int]:
        """The acknowledged rows to delete now (empty: wait for more)."""
        if not self.acked:
            return []
        since = self._acked_since if self._acked_since is not None else now
        if (force or len(self.acked) >= self.batch or now - since >= self.flush_s
                or not self.inflight):
            return list(self.acked)
        return []

    def deleted(self, rows: list[int]) -> None:
        """``rows`` (from :meth:`due`) are deleted from the outbox."""
        gone = set(rows)
        self.acked = [r for r in self.acked if r not in gone]
        if not self.acked:
            self._acked_since = None
