"""What the model store remembers (``state.json``) and how it changes, as pure functions.

No disk here: :mod:`.store` loads and saves a :class:`StoreState`; these functions take one and
return the next. Every change the device makes to which model runs is one of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..common import names

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
    evaluation: str = ""  # the manifest's evaluation summary (models compare before release)
    shadow: dict[str, Any] | None = None  # the shadow evaluation's figures (frames, agreement..)


@dataclass(frozen=True)
class Recovery:
    """``state.json`` was found damaged and the state rebuilt; kept (and reported in status,
    doctor and the MQTT status) until the next update commits."""

    at: float  # unix time of the recovery
    source: str  # "state.json.prev" or "versions/"
    problem: str  # what was wrong, one line
    aside: str = ""  # where the damaged file was moved ("" when it could not be)


@dataclass(frozen=True)
class StoreState:
    active: Entry | None = None
    previous: Entry | None = None
    trial: Trial | None = None
    bad: tuple[str, ...] = ()
    highest_seq: dict[str, int] = field(default_factory=dict)
    deployment: Deployment | None = None
    recovered: Recovery | None = None

    # -- (de)serialisation ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["bad"] = list(self.bad)
        d["schema"] = STATE_SCHEMA
        return d

    @classmethod
    def from_json(cls, d: Any) -> StoreState:
        """Parse what ``to_json`` wrote; anything else (wrong type anywhere, an entry id that is
        not ``<name>/<version>-<sha12>`` of plain names) raises :class:`StateInvalid`."""
        try:
            s = _ADAPTER.validate_python(d)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
            raise StateInvalid(f"{loc}: {first.get('msg', 'invalid')}") from None
        for where, e in (("active", s.active), ("previous", s.previous),
                         ("trial.entry", s.trial.entry if s.trial else None)):
            if e is not None:
                _check_entry(e, where)
        return s
    def referenced(self) -> set[str]:
        """Entry ids that must never be deleted."""
        ids = {e.id for e in (self.active, self.previous) if e is not None}
        if self.trial is not None:
            ids.add(self.trial.entry.id)
        return ids


class StateInvalid(ValueError):
    """``state.json`` is JSON but not the shape :meth:`StoreState.to_json` writes."""


_ADAPTER: TypeAdapter[StoreState] = TypeAdapter(StoreState)


def _check_entry(e: Entry, where: str) -> None:
    name, _, rest = e.id.partition("/")
    for what, value in (("id", name), ("id", rest), ("name", e.name), ("file", e.file)):
        why = names.problem(value)
        if why is not None:
            raise StateInvalid(f"{where}.{what} {value[:80]!r} {why}")
    if name != e.name:
        raise StateInvalid(f"{where}.id {e.id[:80]!r} is not under its name {e.name!r}")


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
    """The trial passed: it becomes active (and a recovery note is settled: the state is whole)."""
    if s.trial is None:
        raise ValueError("no trial in progress")
    return replace(s, active=s.trial.entry, previous=s.active, trial=None, recovered=None)


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


def rebuild(verified: list[tuple[Entry, float]]) -> StoreState:
    """The state ``versions/`` proves when ``state.json`` and its previous generation are both
    lost: ``verified`` are the installed versions whose signed manifest and model verify, with
    their manifest's ``created`` time. The newest becomes active, the next of the same name
    previous; trial, bad list and deployment outcome are unknown (empty)."""
    if not verified:
        return StoreState()
    ranked = sorted(verified, key=lambda v: (v[1], v[0].seq))
    active = ranked[-1][0]
    older = [e for e, _ in ranked[:-1] if e.name == active.name and e.id != active.id]
    return StoreState(active=active, previous=older[-1] if older else None)


def raise_seq(s: StoreState, verified: list[tuple[Entry, float]]) -> StoreState:
    """``highest_seq`` at least every verified installed version's seq (a lower bound: a
    version once installed proves its seq was seen)."""
    seen = dict(s.highest_seq)
    for e, _ in verified:
        seen[e.name] = max(seen.get(e.name, -1), e.seq)
    return replace(s, highest_seq=seen)


def recovery_record(s: StoreState) -> dict[str, Any]:
    """What status, doctor and the MQTT status say about the store: ``{"state": "ok"}`` or
    ``{"state": "recovered", "source", "problem", "at", "aside"}``."""
    if s.recovered is None:
        return {"state": "ok"}
    return {"state": "recovered", **asdict(s.recovered)}


def set_deployment(s: StoreState, d: Deployment | None) -> StoreState:
    return replace(s, deployment=d)


def _add_bad(bad: tuple[str, ...], eid: str) -> tuple[str, ...]:
    return (*tuple(b for b in bad if b != eid), eid)[-MAX_BAD:]
