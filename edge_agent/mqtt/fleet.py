"""Central side, pure logic: the fleet table and gap detection in ``seq``. No I/O.

:class:`FleetState` ingests (topic, payload) pairs from ``edge/+/status|metrics|events|update``
and keeps one :class:`DeviceRow` per device; :class:`SeqTracker` finds missing and duplicate
``seq`` numbers per stream (late arrivals fill their gap). A *gap record* from the device
(``{"seq": n, "gap": {"from", "to", "count", "reason"}}``: records it could not store, e.g. on a
full disk) turns the seqs it covers from unexplained gaps into reported losses. A record whose
seq is not above the last one but which was made *after* it (its ``ts``) starts the stream over
(the device lost its outbox): counted in ``resets``, never as duplicates. ``state()`` /
``from_state()`` let ``fleet serve`` keep all of it in its database.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any

from .topics import device_of

MAX_DEVICES = 10_000


class SeqTracker:
    """Which ``seq`` numbers of one stream arrived; gaps are the ones still missing.

    Memory is bounded: at most ``max_missing`` missing numbers are remembered one by one;
    beyond that they are only counted (``untracked``) and can no longer be filled.
    """

    def __init__(self, max_missing: int = 10_000) -> None:
        self.max_missing = max_missing
        self.first: int | None = None
        self.last: int | None = None
        self.missing: set[int] = set()
        self.untracked = 0
        self.duplicates = 0
        self.received = 0
        self.resets = 0
        self.last_ts: float | None = None  # ``ts`` of the record with the highest seq
        self.reported: collections.Counter[str] = collections.Counter()  # reason -> seqs

    def state(self) -> dict[str, Any]:
        """Everything, as JSON (missing seqs as ``[first, last]`` ranges)."""
        ranges: list[list[int]] = []
        for s in sorted(self.missing):
            if ranges and ranges[-1][1] == s - 1:
                ranges[-1][1] = s
            else:
                ranges.append([s, s])
        return {"first": self.first, "last": self.last, "missing": ranges,
                "untracked": self.untracked, "duplicates": self.duplicates,
                "received": self.received, "resets": self.resets, "last_ts": self.last_ts,
                "reported": dict(self.reported), "max_missing": self.max_missing}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> SeqTracker:
        t = cls(int(d.get("max_missing", 10_000)))
        t.first, t.last = d.get("first"), d.get("last")
        for a, b in d.get("missing", ()):
            t.missing.update(range(int(a), int(b) + 1))
        t.untracked = int(d.get("untracked", 0))
        t.duplicates = int(d.get("duplicates", 0))
        t.received = int(d.get("received", 0))
        t.resets = int(d.get("resets", 0))
        t.last_ts = d.get("last_ts")
        t.reported.update({str(k): int(v) for k, v in d.get("reported", {}).items()})
        return t

    def add_gap(self, first: int, last: int, reason: str) -> int:
        """The device reports ``first..last`` as lost (after :meth:`add` of the gap record's
        own seq); returns how many missing seqs that explains."""
        if last < first or self.last is None or self.first is None:
            return 0
        if first < self.first:
            self.missing.update(range(first, self.first))  # joined mid-stream: cover the range
            self.first = first
        span = range(max(first, self.first), min(last, self.last) + 1)
        if len(span) > len(self.missing):
            found = {s for s in self.missing if first <= s <= last}
        else:
            found = {s for s in span if s in self.missing}
        self.missing -= found
        extra = min(self.untracked, max(0, len(span) - len(found)))
        self.untracked -= extra
        explained = len(found) + extra
        self.reported[reason] += explained
        return explained

    def add(self, seq: int, ts: float | None = None) -> str:
        """Record one ``seq``: returns ``new``, ``late`` (filled a gap), ``duplicate``, or
        ``reset`` (with ``ts``: not above the last seq but made after it, a new stream)."""
        self.received += 1
        if self.first is None or self.last is None:
            self.first = self.last = seq
            self.last_ts = ts
            return "new"
        if ts is not None and self.last_ts is not None and seq <= self.last and \
                ts > self.last_ts and seq not in self.missing:
            self.untracked += len(self.missing)  # the old stream's gaps stay counted
            self.missing.clear()
            self.first = self.last = seq
            self.last_ts = ts
            self.resets += 1
            return "reset"
        if seq > self.last:
            self.last_ts = ts if ts is not None else self.last_ts
            room = self.max_missing - len(self.missing)
            span = seq - self.last - 1
            self.missing.update(range(self.last + 1, self.last + 1 + min(span, max(room, 0))))
            self.untracked += max(0, span - max(room, 0))
            self.last = seq
            return "new"
        if seq in self.missing:
            self.missing.discard(seq)
            return "late"
        if seq < self.first:
            # older than anything seen (we joined mid-stream): fill the range below
            self.missing.update(range(seq + 1, self.first))
            self.first = seq
            return "late"
        self.duplicates += 1
        return "duplicate"

    @property
    def gaps(self) -> int:
        """Missing seqs nobody explained (a gap record explains the ones it covers)."""
        return len(self.missing) + self.untracked

    @property
    def lost(self) -> int:
        """Missing seqs the device reported lost with a gap record."""
        return sum(self.reported.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "received": self.received,
            "missing": self.gaps,
            "reported_lost": dict(sorted(self.reported.items())),
            "duplicates": self.duplicates,
            "resets": self.resets,
        }


def _pick(data: Any, *paths: str) -> Any:
    """The first value found at one of the dotted ``paths`` (schemas differ across versions)."""
    for path in paths:
        node = data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            if node is not None and not isinstance(node, dict):
                return node
    return None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class DeviceRow:
    device: str
    online: bool | None = None
    reason: str | None = None
    model: str | None = None
    version: str | None = None
    backend: str | None = None
    fps: float | None = None
    p95_ms: float | None = None
    cpu_percent: float | None = None
    temperature_c: float | None = None
    last_seen: float | None = None
    update: str | None = None
    agent_version: str | None = None
    active: str | None = None  # "name version" of the active model (models.active)
    groups: tuple[str, ...] = ()
    first_seen: float | None = None
    seqs: dict[str, SeqTracker] = field(default_factory=dict)
    rev: int = 0  # the stored revision this row was read at or last written as (0: none)

    SUMMARY = ("fps", "p95_ms", "cpu_percent", "temperature_c", "update", "reason", "backend")

    def state(self) -> dict[str, Any]:
        """The row for a database (``from_state`` reads it back), trackers apart."""
        return {"device": self.device, "online": self.online, "model": self.model,
                "version": self.version, "active": self.active, "groups": list(self.groups),
                "agent_version": self.agent_version, "first_seen": self.first_seen,
                "last_seen": self.last_seen,
                "summary": {k: getattr(self, k) for k in self.SUMMARY}}

    @classmethod
    def from_state(cls, d: dict[str, Any], seqs: dict[str, SeqTracker]) -> DeviceRow:
        row = cls(d["device"], online=d.get("online"), model=d.get("model"),
                  version=d.get("version"), active=d.get("active"),
                  groups=tuple(d.get("groups") or ()), agent_version=d.get("agent_version"),
                  first_seen=d.get("first_seen"), last_seen=d.get("last_seen"), seqs=seqs,
                  rev=int(d.get("rev") or 0))
        for k in cls.SUMMARY:
            setattr(row, k, (d.get("summary") or {}).get(k))
        return row

    @property
    def gaps(self) -> int:
        return sum(t.gaps for s, t in self.seqs.items() if s != "status")

    @property
    def lost(self) -> int:
        return sum(t.lost for s, t in self.seqs.items() if s != "status")

    @property
    def duplicates(self) -> int:
        return sum(t.duplicates for s, t in self.seqs.items() if s != "status")

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "online": self.online,
            "reason": self.reason,
            "model": self.model,
            "version": self.version,
            "backend": self.backend,
            "fps": self.fps,
            "p95_ms": self.p95_ms,
            "cpu_percent": self.cpu_percent,
            "temperature_c": self.temperature_c,
            "last_seen": self.last_seen,
            "update": self.update,
            "agent_version": self.agent_version,
            "active": self.active,
            "groups": list(self.groups),
            "gaps": self.gaps,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "seq": {s: t.to_json() for s, t in sorted(self.seqs.items()) if s != "status"},
        }


@dataclass
class Ingested:
    """What one message did: the row, the stream, its seq (if any) and what the seq was
    (``new``, ``late``, ``duplicate``, ``reset``; ``""`` without seq). A duplicate changes
    nothing but its counter."""

    row: DeviceRow
    stream: str
    seq: int | None
    kind: str
    data: dict[str, Any]

    @property
    def applied(self) -> bool:
        return self.kind != "duplicate"


class FleetState:
    """Every device seen under ``root`` (default ``edge``)."""

    def __init__(self, root: str = "edge", max_devices: int = MAX_DEVICES) -> None:
        self.root = root
        self.max_devices = max_devices
        self.devices: dict[str, DeviceRow] = {}
        self.ignored = 0

    def ingest(self, topic: str, payload: bytes, now: float) -> DeviceRow | None:
        """Apply one message; returns the row it changed, or None if it was not ours/valid."""
        got = self.ingest_record(topic, payload, now)
        return got.row if got is not None else None

    def ingest_record(self, topic: str, payload: bytes, now: float) -> Ingested | None:
        """Like :meth:`ingest`, saying what the message was."""
        where = device_of(topic, self.root)
        if where is None:
            return None
        device, stream = where
        try:
            data = json.loads(payload) if payload else {}
        except (ValueError, UnicodeDecodeError):
            self.ignored += 1
            return None
        if not isinstance(data, dict):
            self.ignored += 1
            return None
        row = self.devices.get(device)
        if row is None:
            if len(self.devices) >= self.max_devices:
                self.ignored += 1
                return None
            row = self.devices[device] = DeviceRow(device, first_seen=now)
        seq = data.get("seq")
        kind = ""
        if isinstance(seq, int) and not isinstance(seq, bool):
            tracker = row.seqs.setdefault(stream, SeqTracker())
            ts = _num(data.get("ts"))
            kind = tracker.add(seq, ts)
            if kind == "duplicate":
                return Ingested(row, stream, seq, kind, data)
            gap = data.get("gap")
            if isinstance(gap, dict):
                a, b = gap.get("from"), gap.get("to")
                if isinstance(a, int) and isinstance(b, int) and 0 < a <= b < seq:
                    tracker.add_gap(a, b, str(gap.get("reason") or "unknown")[:32])
                row.last_seen = now
                return Ingested(row, stream, seq, kind, data)  # a gap record carries no data
        else:
            seq = None
        if stream == "status":
            self._status(row, data)
        elif stream == "metrics":
            self._metrics(row, data)
        elif stream == "update":
            state = data.get("state")
            row.update = f"{data.get('version', '?')} {state}" if state else row.update
        if stream != "status" or data.get("online"):
            row.last_seen = now
        return Ingested(row, stream, seq, kind, data)

    @staticmethod
    def _status(row: DeviceRow, data: dict[str, Any]) -> None:
        online = data.get("online")
        row.online = bool(online) if online is not None else None
        row.reason = None if row.online else data.get("reason")
        # an offline record carries the last model too (the agent's will and its stop record)
        if row.online or _pick(data, "model.name", "models.active") is not None:
            row.model = _pick(data, "model.name", "model") or row.model
            v = _pick(data, "model.version", "model_version")
            active = _pick(data, "models.active")  # "name version" from the update component
            if v is None and isinstance(active, str) and " " in active:
                v = active.rsplit(" ", 1)[1]
            row.version = str(v) if v is not None else row.version
            row.backend = _pick(data, "backend.name", "backend", "model.backend") or row.backend
            row.agent_version = _pick(data, "agent_version") or row.agent_version
            row.active = active if isinstance(active, str) else (
                f"{row.model} {row.version}" if row.model and row.version else row.active)
            groups = data.get("groups")
            if isinstance(groups, list):
                row.groups = tuple(str(g)[:64] for g in groups[:32])

    @staticmethod
    def _metrics(row: DeviceRow, d: dict[str, Any]) -> None:
        row.fps = _num(_pick(d, "fps.processed"))
        row.p95_ms = _num(_pick(d, "latency_ms.e2e.p95", "latency_ms.invoke.p95"))
        row.cpu_percent = _num(_pick(d, "cpu.process_percent"))
        row.temperature_c = _num(_pick(d, "temperature.cpu_c", "bridge.temperature_c"))
        model = _pick(d, "model.name")
        if model:
            row.model = model
        backend = _pick(d, "model.backend", "backend")
        delegate = _pick(d, "model.delegate")
        if backend:
            row.backend = f"{backend}+{delegate}" if delegate not in (None, "cpu") else backend

    def rows(self) -> list[DeviceRow]:
        return [self.devices[k] for k in sorted(self.devices)]
