"""What the model store remembers (``state.json``) and how it changes, as pure functions.

No disk here: :mod:`.store` loads and saves a :class:`StoreState`; these functions take one and
return the next. Every change the device makes to which model runs is one of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

STATE_SCHEMA = 1
MAX_BAD = 50


@dataclass(frozen=True)
class Entry:
    """One installed model version: ``versions/<id>/<file>``."""

    id: str  # "<name>/<version>-<sha12>"
    name: str
    version: str
    seq: int
    sha256: str
    size: int
    file: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Trial:
    entry: Entry
    attempts_left: int
    deployment: str


@dataclass(frozen=True)
class Deployment:
    """The update in flight or the last one finished; its outcome survives restarts."""

    id: str
    model: str
    version: str
    registry: str
    state: str = "received"
    reason: str = ""
    detail: str = ""
    final: bool = False
    sent: bool = False
    restarts: int = 0
    baseline_ms: float | None = None  # the old model's p95 invoke, measured before the swap
    baseline_p50_ms: float | None = None  # and its median


@dataclass(frozen=True)
class StoreState:
    active: Entry | None = None
    previous: Entry | None = None
    trial: Trial | None = None
    bad: tuple[str, ...] = ()
    highest_seq: dict[str, int] = field(default_factory=dict)
    deployment: Deployment | None = None

    # -- (de)serialisation ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["bad"] = list(self.bad)
        d["schema"] = STATE_SCHEMA
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StoreState:
        def entry(x: Any) -> Entry | None:
            return Entry(**x) if x else None

        trial = d.get("trial")
        dep = d.get("deployment")
        return cls(
            active=entry(d.get("active")),
            previous=entry(d.get("previous")),
            trial=(
                Trial(Entry(**trial["entry"]), int(trial["attempts_left"]), trial["deployment"])
                if trial
                else None
            ),
            bad=tuple(d.get("bad", ())),
            highest_seq={str(k): int(v) for k, v in d.get("highest_seq", {}).items()},
            deployment=Deployment(**dep) if dep else None,
        )

    def referenced(self) -> set[str]:
        """Entry ids that must never be deleted."""
        ids = {e.id for e in (self.active, self.previous) if e is not None}
        if self.trial is not None:
            ids.add(self.trial.entry.id)
        return ids


# -- transitions -------------------------------------------------------------------------------
def begin_trial(s: StoreState, entry: Entry, attempts: int, deployment: str) -> StoreState:
    seq = max(s.highest_seq.get(entry.name, -1), entry.seq)
    return replace(
        s,
        trial=Trial(entry, attempts, deployment),
        highest_seq={**s.highest_seq, entry.name: seq},
    )


def consume_attempt(s: StoreState) -> StoreState:
    """Called (and persisted) *before* the trial model is loaded."""
    if s.trial is None:
        raise ValueError("no trial in progress")
    return replace(s, trial=replace(s.trial, attempts_left=s.trial.attempts_left - 1))


def commit_trial(s: StoreState) -> StoreState:
    if s.trial is None:
        raise ValueError("no trial in progress")
    return replace(s, active=s.trial.entry, previous=s.active, trial=None)


def abandon_trial(s: StoreState) -> StoreState:
    """The trial model failed: it goes on the bad list, the active model stays."""
    if s.trial is None:
        return s
    return replace(s, trial=None, bad=_add_bad(s.bad, s.trial.entry.id))


def rollback(s: StoreState) -> StoreState:
    """Explicit rollback: the previous model becomes active (a running trial is abandoned)."""
    if s.previous is None:
        raise ValueError("no previous model to roll back to")
    s = abandon_trial(s)
    return replace(s, active=s.previous, previous=s.active)


def activate(s: StoreState, entry: Entry) -> StoreState:
    """A technician's choice: make an installed version active now."""
    if s.active is not None and s.active.id == entry.id:
        return s
    return replace(
        s, active=entry, previous=s.active, trial=None, bad=tuple(b for b in s.bad if b != entry.id)
    )


def drop_corrupt_active(s: StoreState) -> StoreState:
    """The active model's bytes no longer verify: the previous one takes its place."""
    bad = _add_bad(s.bad, s.active.id) if s.active else s.bad
    return replace(s, active=s.previous, previous=None, bad=bad)


def set_deployment(s: StoreState, d: Deployment | None) -> StoreState:
    return replace(s, deployment=d)


def _add_bad(bad: tuple[str, ...], eid: str) -> tuple[str, ...]:
    return (*tuple(b for b in bad if b != eid), eid)[-MAX_BAD:]
