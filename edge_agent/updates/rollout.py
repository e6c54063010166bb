"""The rollout of one deployment as a state machine whose transitions are a data table.

No I/O (h11 style): :class:`Rollout` takes events and returns the record to persist and then
publish on ``<p>/update``. An event that is not allowed in the current state is a programming
error (:class:`IllegalTransition` names the event and the state).

```
received --accepted--> downloading --downloaded--> verifying --verified--> preflight
preflight --passed--> activating --swapped--> trial --healthy--> committed
preflight --shadowing--> shadow --passed--> activating   (the manifest asks for health.shadow)
any of received..shadow --reject--> rejected       (the registry or the model is at fault)
received..shadow --error--> failed                 (network, deadline, full disk)
received..shadow --cancel--> cancelled             (`cancel`/`rollback` command)
activating --error--> rolled_back                   (the agent could not load it)
trial --unhealthy--> rolled_back                    (also `cancel`/`rollback` during the trial)
any non-final --abort--> failed
```
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .state import Deployment

RECEIVED = "received"
REJECTED = "rejected"
DOWNLOADING = "downloading"
VERIFYING = "verifying"
PREFLIGHT = "preflight"
SHADOW = "shadow"
ACTIVATING = "activating"
TRIAL = "trial"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
CANCELLED = "cancelled"

STATES = (
    RECEIVED,
    REJECTED,
    DOWNLOADING,
    VERIFYING,
    PREFLIGHT,
    SHADOW,
    ACTIVATING,
    TRIAL,
    COMMITTED,
    ROLLED_BACK,
    FAILED,
    CANCELLED,
)
FINAL = frozenset({REJECTED, COMMITTED, ROLLED_BACK, FAILED, CANCELLED})
BEFORE_SWAP = (RECEIVED, DOWNLOADING, VERIFYING, PREFLIGHT, SHADOW)
"""The states a ``cancel`` ends with ``cancelled`` (nothing was swapped in yet)."""

TRANSITIONS: dict[tuple[str, str], str] = {
    (RECEIVED, "accepted"): DOWNLOADING,
    (RECEIVED, "reject"): REJECTED,
    (RECEIVED, "error"): FAILED,
    (DOWNLOADING, "progress"): DOWNLOADING,
    (DOWNLOADING, "downloaded"): VERIFYING,
    (DOWNLOADING, "reject"): REJECTED,
    (DOWNLOADING, "error"): FAILED,
    (VERIFYING, "verified"): PREFLIGHT,
    (VERIFYING, "reject"): REJECTED,
    (VERIFYING, "error"): FAILED,
    (PREFLIGHT, "passed"): ACTIVATING,
    (PREFLIGHT, "reject"): REJECTED,
    (PREFLIGHT, "error"): FAILED,
    (PREFLIGHT, "shadowing"): SHADOW,
    (SHADOW, "passed"): ACTIVATING,
    (SHADOW, "reject"): REJECTED,
    (SHADOW, "error"): FAILED,
    (ACTIVATING, "swapped"): TRIAL,
    (ACTIVATING, "error"): ROLLED_BACK,
    (TRIAL, "healthy"): COMMITTED,
    (TRIAL, "unhealthy"): ROLLED_BACK,
}
for _s in STATES:
    if _s not in FINAL:
        TRANSITIONS[(_s, "abort")] = FAILED
for _s in BEFORE_SWAP:
    TRANSITIONS[(_s, "cancel")] = CANCELLED


class IllegalTransition(RuntimeError):
    def __init__(self, event: str, state: str) -> None:
        super().__init__(f"rollout: event {event!r} is not allowed in state {state!r}")


@dataclass
class Rollout:
    """One deployment's progress. ``deployment`` is what gets persisted in state.json."""

    deployment: Deployment
    progress: float | None = None

    @property
    def state(self) -> str:
        return self.deployment.state

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def handle(
        self, event: str, *, reason: str = "", detail: str = "", progress: float | None = None
    ) -> Deployment:
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise IllegalTransition(event, self.state)
        self.progress = progress
        self.deployment = replace(
            self.deployment,
            state=nxt,
            reason=reason,
            detail=detail,
            final=nxt in FINAL,
            sent=False,
        )
        return self.deployment


def record(d: Deployment, progress: float | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON body published on ``<p>/update``."""
    out: dict[str, Any] = {
        "deployment": d.id,
        "model": d.model,
        "version": d.version,
        "state": d.state,
        "final": d.final,
    }
    if progress is not None:
        out["progress"] = round(progress, 3)
    if d.reason:
        out["reason"] = d.reason
    if d.detail:
        out["detail"] = d.detail
    if d.evaluation:
        out["evaluation"] = d.evaluation
    if d.shadow is not None:
        out["shadow"] = dict(d.shadow)
    out.update(extra)
    return out
