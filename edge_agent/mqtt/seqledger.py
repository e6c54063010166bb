"""Where ``seq`` lives while the outbox cannot write: a small preallocated file, rewritten in place.

When the disk is full SQLite cannot commit, so the seqs given to records that could not be
stored (and the ranges of those lost records) would live only in memory and a restart would
reuse them. ``<state_dir>/mqtt/seq.ledger`` is made at full size (4 KiB) while there is
space; afterwards it is only *overwritten*, which needs no new blocks, so it keeps working on a
full disk. Two 2 KiB slots are written alternately, each with a generation and a CRC, so a torn
write leaves the other slot readable.

The ledger is written only when something cannot be stored; the outbox database stays the
source of truth otherwise (see :class:`~edge_agent.mqtt.outbox.Outbox`).
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLOT = 2048
SIZE = 2 * SLOT
MAX_RANGES = 8
"""Lost ranges kept per stream; beyond that the two closest are merged (the gap record then
also covers seqs in between that were delivered — a consumer that received them keeps them)."""


@dataclass
class LedgerState:
    """``seqs``: last seq given per stream; ``lost``: ``[from, to, reason]`` ranges of records
    that got a seq and could not be stored; ``unsequenced``: ``[count, reason]`` of records lost
    while no seq could be known (the outbox was not open)."""

    seqs: dict[str, int] = field(default_factory=dict)
    lost: dict[str, list[list[Any]]] = field(default_factory=dict)
    unsequenced: dict[str, list[Any]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not any(self.lost.values()) and not self.unsequenced

    def add_lost(self, stream: str, seq: int, reason: str) -> None:
        ranges = self.lost.setdefault(stream, [])
        if ranges and ranges[-1][1] == seq - 1 and ranges[-1][2] == reason:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq, reason])
        while len(ranges) > MAX_RANGES:
            i = min(range(len(ranges) - 1), key=lambda k: ranges[k + 1][0] - ranges[k][1])
            ranges[i : i + 2] = [[ranges[i][0], ranges[i + 1][1], ranges[i][2]]]

    def add_unsequenced(self, stream: str, reason: str) -> None:
        n, _ = self.unsequenced.get(stream, [0, reason])
        self.unsequenced[stream] = [n + 1, reason]

    def to_json(self) -> dict[str, Any]:
        return {"seqs": self.seqs, "lost": self.lost, "unsequenced": self.unsequenced}

    @classmethod
    def from_json(cls, data: Any) -> LedgerState:
        if not isinstance(data, dict):
            return cls()
        seqs = {
            str(k): int(v)
            for k, v in (data.get("seqs") or {}).items()
            if isinstance(v, int) and v >= 0
        }
        lost: dict[str, list[list[Any]]] = {}
        for k, ranges in (data.get("lost") or {}).items():
            good = [
                [int(r[0]), int(r[1]), str(r[2])]
                for r in ranges
                if isinstance(r, list) and len(r) == 3 and isinstance(r[0], int)
                and isinstance(r[1], int) and 0 < r[0] <= r[1]
            ]
            if good:
                lost[str(k)] = good
        unseq = {
            str(k): [int(v[0]), str(v[1])]
            for k, v in (data.get("unsequenced") or {}).items()
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and v[0] > 0
        }
        return cls(seqs, lost, unseq)


class SeqLedger:
    """The ledger file. :meth:`save` returns False (never raises) when it cannot be written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._gen = 0
        self.error = ""

    def ensure(self) -> bool:
        """Open the file, making it full size if needed (needs free space once)."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}"
            return False
        try:
            if os.fstat(fd).st_size < SIZE:
                os.pwrite(fd, b" " * SIZE, 0)  # real blocks, not a sparse file
                os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            self.error = f"{self.path}: cannot preallocate: {exc.strerror}"
            return False
        self._fd = fd
        self.error = ""
        return True

    def load(self) -> LedgerState:
        """The newest valid slot (an empty state when there is none)."""
        try:
            raw = self.path.read_bytes()[:SIZE]
        except OSError:
            return LedgerState()
        best: tuple[int, Any] | None = None
        for off in (0, SLOT):
            slot = raw[off : off + SLOT].rstrip(b" \n\0")
            crc, _, body = slot.partition(b" ")
            try:
                if int(crc, 16) != zlib.crc32(body):
                    continue
                doc = json.loads(body)
                gen = int(doc["gen"])
            except (ValueError, KeyError, TypeError):
                continue
            if best is None or gen > best[0]:
                best = (gen, doc.get("state"))
        if best is None:
            return LedgerState()
        self._gen = best[0]
        return LedgerState.from_json(best[1])

    def save(self, state: LedgerState) -> bool:
        if not self.ensure():
            return False
        assert self._fd is not None
        self._gen += 1
        body = json.dumps(
            {"gen": self._gen, "state": state.to_json()}, separators=(",", ":")
        ).encode()
        data = f"{zlib.crc32(body):08x} ".encode() + body + b"\n"
        if len(data) > SLOT:
            self.error = f"{self.path}: ledger state too large ({len(data)} bytes)"
            return False
        try:
            os.pwrite(self._fd, data.ljust(SLOT, b" "), (self._gen % 2) * SLOT)
            os.fsync(self._fd)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}"
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
