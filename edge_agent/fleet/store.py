"""The fleet store: one small storage interface (:class:`FleetStore`), its records, migrations.

Everything ``fleet serve`` knows lives behind this interface: device rows with their per-stream
seq accounting, the update history of every device, rollouts (the controller's whole state)
and the commands sent for them. Writes come in one :class:`Batch` = one transaction, so what
the service acknowledges to the broker (after the commit) is either all stored or not at all.

Implementations share their SQL (:mod:`.sql_store`) and the migrations
(``migrations/NNNN_*.sql``, portable SQL): :mod:`.sqlite_store` (the embedded default, one
``fleet serve``) and :mod:`.postgres_store` (replicas, large fleets).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from ..mqtt.fleet import DeviceRow
from .rollout import Rollout

UPDATE_HISTORY = 200
"""Update records kept per device (the oldest are deleted)."""


@dataclass(frozen=True)
class UpdateRecord:
    device: str
    seq: int
    ts: float | None
    deployment: str | None
    model: str | None
    version: str | None
    state: str | None
    final: bool
    reason: str | None
    detail: str | None
    received_at: float

    @classmethod
    def from_data(cls, device: str, seq: int, d: dict[str, Any], now: float) -> UpdateRecord:
        def s(k: str, n: int = 64) -> str | None:
            v = d.get(k)
            return None if v is None else str(v)[:n]

        ts = d.get("ts")
        return cls(device, seq, float(ts) if isinstance(ts, (int, float)) else None,
                   s("deployment"), s("model"), s("version"), s("state"), bool(d.get("final")),
                   s("reason"), s("detail", 500), now)


@dataclass(frozen=True)
class CommandRow:
    """A command the service sends (intent saved before publishing; sent once acknowledged)."""

    device: str
    id: str
    name: str
    rollout: str | None
    body: dict[str, Any]
    created_at: float
    sent_at: float | None = None
    reply: dict[str, Any] | None = None
    replied_at: float | None = None


@dataclass
class Batch:
    """What one transaction writes."""

    rows: list[DeviceRow] = field(default_factory=list)
    updates: list[UpdateRecord] = field(default_factory=list)
    rollouts: list[Rollout] = field(default_factory=list)
    commands: list[CommandRow] = field(default_factory=list)  # new intents
    sent: list[tuple[str, str, float]] = field(default_factory=list)  # (device, id, ts)
    replies: list[tuple[str, str, dict[str, Any], float]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.rows, self.updates, self.rollouts, self.commands, self.sent,
                    self.replies))


class StoreTx(Protocol):
    def device_rows(self, devices: Collection[str]) -> dict[str, DeviceRow]: ...

    def lock_devices(self, devices: Collection[str], known: Mapping[str, int]
                     ) -> dict[str, DeviceRow]: ...


class FleetStore(Protocol):
    """The storage layer of ``fleet serve``; every method may raise FleetStoreError."""

    shared_writers: bool  # replicas write too: read the rows to change inside the transaction

    def write(self, batch: Batch) -> None: ...

    def transact(self, build: Callable[[StoreTx], Batch]) -> Batch: ...

    def lead(self, name: str) -> bool: ...

    def set_leader(self, lock: str, client_id: str, url: str | None, since: float) -> None: ...

    def leader(self, lock: str) -> tuple[str, str | None] | None: ...

    def updates_since(self, deployments: Collection[str], since: float
                      ) -> list[UpdateRecord]: ...

    def devices(self) -> list[DeviceRow]: ...

    def device(self, device: str) -> DeviceRow | None: ...

    def device_views(self) -> list[tuple[str, bool | None, str | None, tuple[str, ...],
                                         float | None]]: ...

    def device_counts(self) -> list[tuple[bool | None, str | None, str | None, str | None,
                                          int]]:
        """(online, active, model, version, how many devices) for every combination."""
        ...

    def update_history(self, device: str, limit: int = 50) -> list[UpdateRecord]: ...

    def rollouts(self, active_only: bool = False) -> list[Rollout]: ...

    def rollout(self, rollout_id: str) -> Rollout | None: ...

    def commands(self, *, rollout: str | None = None, unsent: bool = False,
                 replied_since: float | None = None) -> list[CommandRow]: ...

    def lost_by_stream(self) -> list[tuple[str, str, int, int, int]]:
        """(device, stream, missing, reported lost, duplicates) of every stream with any."""
        ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The script's statements (``;`` at a line end ends one; ``--`` comments dropped)."""
        lines = [ln for ln in self.sql.splitlines() if not ln.strip().startswith("--")]
        return [s.strip() for s in re.split(r";\s*$", "\n".join(lines), flags=re.M)
                if s.strip()]


def migrations() -> list[Migration]:
    """The versioned SQL scripts shipped in ``edge_agent/fleet/migrations``, in order."""
    out = []
    for f in resources.files(__package__).joinpath("migrations").iterdir():
        m = re.fullmatch(r"([0-9]{4})_([a-z0-9_]+)\.sql", f.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), f.read_text(encoding="utf-8")))
    out.sort(key=lambda x: x.version)
    if [m.version for m in out] != list(range(1, len(out) + 1)):
        raise RuntimeError(f"fleet migrations are not numbered 1..n: {[m.name for m in out]}")
    return out
