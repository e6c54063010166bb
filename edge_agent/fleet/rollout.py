"""A rollout in waves as a pure state machine: a data table of states and transitions.

No I/O, no clock of its own (h11 style). The service feeds it the devices' own records
(:func:`on_record`), the replies to its commands (:func:`on_reply`), the operator's requests
(:func:`pause`, :func:`resume`, :func:`abort`) and the time with a view of the fleet
(:func:`tick`); :func:`tick` returns the commands to send. Everything it knows is in
:class:`Rollout`, which the service persists (``to_json``) *before* it sends those commands, so
a service killed at any moment continues where it was. A command is the same ``update`` or
``rollback`` an operator could send by hand, with an id fixed per rollout and device
(``<rollout>.update``): a repeat is answered by the device, never run twice.

Vocabulary from hawkBit rollout groups and Greengrass job abort criteria:

- a wave is pushed, then watched. It **advances** when committed >= ``success_threshold`` % of
  the wave (its other devices go on and are still counted; the rollout is ``finished`` once the
  last wave reached its threshold and no device of any wave is still pending); it **halts** when
  failed (failed + rolled back + rejected + cancelled + refused + timed out) >=
  ``error_threshold`` % of the wave, once at least ``min_executed`` devices of the wave (or all
  of them, if fewer) have finished (``minNumberOfExecutedThings``); a wave whose every device
  finished below the success threshold halts too.
- a device that has not finished ``wave_timeout_s`` after its push (offline, or stuck) counts
  as failed from then on (``timed_out``, the reason says which); its command carries
  ``expires_at`` = push + wave timeout, so a device back later does not run it.
- on halt, ``on_halt = "rollback"`` sends ``rollback`` to the wave's devices that committed.

```
rollout:  running --advance--> running        running --finish--> finished
          running --halt--> halted            running --pause--> paused
          paused --resume--> running          halted --resume--> running (next wave)
          running | paused | halted --abort--> aborted
device:   waiting --push--> pushed --accepted--> updating --committed--> committed
          pushed | updating --failed--> failed         --timeout--> timed_out
          committed --rollback--> rollback_sent --reverted--> reverted | revert_failed
          (skipped: already on the version when the rollout was created)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import RolloutError
from .spec import WaveSize, resolve_waves

# -- rollout states ----------------------------------------------------------------------------
RUNNING = "running"
PAUSED = "paused"
HALTED = "halted"
FINISHED = "finished"
ABORTED = "aborted"
STATES = (RUNNING, PAUSED, HALTED, FINISHED, ABORTED)
FINAL = frozenset({FINISHED, ABORTED})

TRANSITIONS: dict[tuple[str, str], str] = {
    (RUNNING, "advance"): RUNNING,
    (RUNNING, "finish"): FINISHED,
    (RUNNING, "halt"): HALTED,
    (RUNNING, "pause"): PAUSED,
    (PAUSED, "resume"): RUNNING,
    (HALTED, "resume"): RUNNING,
    (RUNNING, "abort"): ABORTED,
    (PAUSED, "abort"): ABORTED,
    (HALTED, "abort"): ABORTED,
}

# -- device states within a rollout ------------------------------------------------------------
WAITING = "waiting"
SKIPPED = "skipped"
PUSHED = "pushed"
UPDATING = "updating"
COMMITTED = "committed"
FAILED = "failed"
TIMED_OUT = "timed_out"
ROLLBACK_SENT = "rollback_sent"
REVERTED = "reverted"
REVERT_FAILED = "revert_failed"

DEVICE_TRANSITIONS: dict[tuple[str, str], str] = {
    (WAITING, "push"): PUSHED,
    (PUSHED, "accepted"): UPDATING,
    (PUSHED, "committed"): COMMITTED,
    (UPDATING, "committed"): COMMITTED,
    (PUSHED, "failed"): FAILED,
    (UPDATING, "failed"): FAILED,
    (PUSHED, "timeout"): TIMED_OUT,
    (UPDATING, "timeout"): TIMED_OUT,
    (COMMITTED, "rollback"): ROLLBACK_SENT,
    (ROLLBACK_SENT, "reverted"): REVERTED,
    (ROLLBACK_SENT, "revert_failed"): REVERT_FAILED,
}
PENDING = frozenset({PUSHED, UPDATING})
SUCCEEDED = frozenset({COMMITTED, ROLLBACK_SENT, REVERTED, REVERT_FAILED})
ERRORED = frozenset({FAILED, TIMED_OUT})

DEVICE_FAILED_STATES = frozenset({"failed", "rejected", "rolled_back", "cancelled"})
"""The device's own final update states (updates/rollout.py) that count as failed here."""

ON_HALT = ("pause", "rollback")


class IllegalTransition(RolloutError):
    def __init__(self, rollout: str, event: str, state: str) -> None:
        super().__init__(f"rollout {rollout} is {state}: cannot {event} it")


@dataclass(frozen=True)
class DeviceView:
    """What the fleet store knows of a device when the controller looks."""

    online: bool | None = None
    active: str | None = None  # "name version" of the active model
    groups: tuple[str, ...] = ()
    last_seen: float | None = None


@dataclass(frozen=True)
class Policy:
    waves: tuple[WaveSize, ...]
    success_threshold: float = 95.0
    error_threshold: float = 10.0
    min_executed: int = 3
    wave_timeout_s: float = 900.0
    on_halt: str = "pause"

    def __post_init__(self) -> None:
        if self.on_halt not in ON_HALT:
            raise RolloutError(f"--on-halt {self.on_halt!r}: expected pause or rollback")
        if self.min_executed < 1:
            raise RolloutError(f"--min-executed {self.min_executed}: expected at least 1")


@dataclass
class Target:
    """One device of the rollout."""

    device: str
    wave: int | None  # index into Rollout.sizes; None: skipped
    state: str = WAITING
    outcome: str = ""  # the device's own final state, or refused / timed_out
    reason: str = ""
    detail: str = ""
    pushed_at: float | None = None
    finished_at: float | None = None
    late: str = ""  # a final record that came after the device had timed out


@dataclass(frozen=True)
class Decision:
    ts: float
    kind: str  # start, push, advance, halt, timeout, rollback, pause, resume, abort, finish, join
    wave: int | None
    reason: str


@dataclass(frozen=True)
class Command:
    """A command to send (the service persists the rollout first)."""

    device: str
    name: str  # update | rollback
    id: str
    params: dict[str, Any]
    expires_at: float


@dataclass
class Rollout:
    id: str
    model: str
    version: str
    policy: Policy
    created_at: float
    registry: str | None = None
    group: str | None = None
    state: str = RUNNING
    reason: str = ""
    wave: int = 0  # the current wave (index into sizes)
    wave_started_at: float | None = None
    sizes: list[int] = field(default_factory=list)  # cumulative device counts per wave
    targets: dict[str, Target] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    joined: bool = False  # group members that joined were added to the last wave

    @property
    def label(self) -> str:
        return f"{self.model} {self.version}"

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def members(self, wave: int) -> list[Target]:
        return [t for t in self.targets.values() if t.wave == wave]

    # -- (de)serialisation -----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["policy"]["waves"] = [str(w) for w in self.policy.waves]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Rollout:
        from .spec import parse_waves

        p = dict(d["policy"])
        p["waves"] = parse_waves(",".join(p["waves"]))
        return cls(
            **{k: v for k, v in d.items() if k not in ("policy", "targets", "decisions")},
            policy=Policy(**p),
            targets={k: Target(**v) for k, v in d["targets"].items()},
            decisions=[Decision(**x) for x in d["decisions"]],
        )


# -- creation ----------------------------------------------------------------------------------
def create(
    rollout_id: str,
    model: str,
    version: str,
    policy: Policy,
    view: Mapping[str, DeviceView],
    now: float,
    *,
    group: str | None = None,
    devices: list[str] | None = None,
    registry: str | None = None,
) -> Rollout:
    """A new rollout over a group (its members now) or a list of known devices.

    Devices already on the version are skipped; the others are ordered online first, then by
    id, and cut into the waves. Nothing is sent yet: the first :func:`tick` pushes wave 1."""
    if (group is None) == (devices is None):
        raise RolloutError("a rollout needs --group G or --devices a,b,... (one of them)")
    if group is not None:
        chosen = sorted(d for d, v in view.items() if group in v.groups)
        if not chosen:
            raise RolloutError(f"group {group!r}: no device of it is known to the fleet yet")
    else:
        assert devices is not None
        chosen = sorted(set(devices))
        unknown = [d for d in chosen if d not in view]
        if not chosen or unknown:
            raise RolloutError(
                f"--devices: {', '.join(unknown) or '(none)'}: not known to the fleet "
                "(never seen on the broker); check the ids"
            )
    r = Rollout(rollout_id, model, version, policy, now, registry=registry, group=group)
    label = r.label
    skipped = [d for d in chosen if view[d].active == label]
    todo = sorted((d for d in chosen if d not in skipped),
                  key=lambda d: (view[d].online is not True, d))
    r.sizes = resolve_waves(policy.waves, len(todo))
    for d in skipped:
        r.targets[d] = Target(d, None, SKIPPED, outcome="skipped",
                              reason=f"already on {label}")
    start = 0
    for i, end in enumerate(r.sizes):
        for d in todo[start:end]:
            r.targets[d] = Target(d, i)
        start = end
    _decide(r, now, "start", None,
            f"{len(todo)} device(s) to update in {len(r.sizes)} wave(s) "
            f"(cumulative {r.sizes}), {len(skipped)} skipped (already on {label})")
    r.wave_started_at = now
    return r


# -- events ------------------------------------------------------------------------------------
def on_record(r: Rollout, device: str, state: str, now: float, *, reason: str = "",
              detail: str = "") -> None:
    """A record of this rollout's deployment from ``<p>/update``."""
    t = r.targets.get(device)
    if t is None:
        return
    if state == "committed":
        event = "committed"
    elif state in DEVICE_FAILED_STATES:
        event = "failed"
    else:
        event = "accepted"
    if not _device_event(t, event, now, outcome=state, reason=reason, detail=detail) and \
            t.state == TIMED_OUT and event != "accepted":
        t.late = state  # shown, but the decision taken at the timeout stands


def on_reply(r: Rollout, device: str, command: str, ok: bool, now: float, *, code: str = "",
             message: str = "") -> None:
    """The device's reply to this rollout's ``update`` or ``rollback`` command."""
    t = r.targets.get(device)
    if t is None:
        return
    if command == "update":
        if ok:
            _device_event(t, "accepted", now)
        else:
            _device_event(t, "failed", now, outcome="refused", reason=code, detail=message)
    elif command == "rollback":
        _device_event(t, "reverted" if ok else "revert_failed", now, reason=code,
                      detail=message)


def pause(r: Rollout, now: float, why: str = "operator") -> None:
    _transition(r, "pause", now, None, f"paused by the {why}")


def resume(r: Rollout, now: float) -> None:
    was = r.state
    _transition(r, "resume", now, r.wave, "resumed by the operator")
    if was == HALTED:  # the operator accepts the halted wave: on to the next one
        _advance(r, now, f"wave {r.wave + 1} accepted by the operator after the halt")


def abort(r: Rollout, now: float) -> None:
    _transition(r, "abort", now, r.wave,
                "aborted by the operator (devices already updating finish on their own)")


def tick(r: Rollout, now: float, view: Mapping[str, DeviceView]) -> list[Command]:
    """Time passes: time-outs, decisions, and the commands to send now."""
    if r.final:
        return []
    out: list[Command] = []
    for t in r.targets.values():
        if t.state in PENDING and t.pushed_at is not None and \
                now >= t.pushed_at + r.policy.wave_timeout_s:
            v = view.get(t.device)
            why = (f"offline (last seen {_ago(v.last_seen, now)}): counted as failed after "
                   f"the wave timeout ({r.policy.wave_timeout_s:g} s)"
                   if v is not None and v.online is False else
                   f"no final update record within the wave timeout "
                   f"({r.policy.wave_timeout_s:g} s): counted as failed")
            _device_event(t, "timeout", now, outcome="timed_out", reason="wave_timeout",
                          detail=why)
            _decide(r, now, "timeout", t.wave, f"{t.device}: {why}")
    for _ in range(len(r.sizes) + 1):  # each pass may advance one wave
        if r.state != RUNNING:
            break
        if r.wave == len(r.sizes) - 1 and not r.joined:
            _join(r, now, view)
        out += _push(r, now)
        if not _evaluate(r, now):
            break
    if r.state == HALTED and r.policy.on_halt == "rollback":
        for t in r.members(r.wave):
            if t.state == COMMITTED:  # also one that committed after the halt
                _device_event(t, "rollback", now)
                out.append(Command(t.device, "rollback", f"{r.id}.rollback", {},
                                   now + r.policy.wave_timeout_s))
    return out


# -- progress ----------------------------------------------------------------------------------
def wave_progress(r: Rollout) -> list[dict[str, Any]]:
    """Per wave: size and how many devices are in each state (for status and the dashboard)."""
    out = []
    for i in range(len(r.sizes)):
        m = r.members(i)
        counts = {s: sum(1 for t in m if t.state == s) for s in
                  (WAITING, PUSHED, UPDATING, COMMITTED, FAILED, TIMED_OUT, ROLLBACK_SENT,
                   REVERTED, REVERT_FAILED)}
        ok = sum(1 for t in m if t.state in SUCCEEDED)
        bad = sum(1 for t in m if t.state in ERRORED)
        state = ("done" if i < r.wave or (i == r.wave and r.state == FINISHED) else
                 "current" if i == r.wave else "waiting")
        out.append({
            "wave": i + 1, "size": len(m), "cumulative": r.sizes[i], "state": state,
            "committed": ok, "failed": bad, "pending": counts[PUSHED] + counts[UPDATING],
            "waiting": counts[WAITING], "states": {k: v for k, v in counts.items() if v},
        })
    return out


# -- internals ---------------------------------------------------------------------------------
def _device_event(t: Target, event: str, now: float, *, outcome: str = "", reason: str = "",
                  detail: str = "") -> bool:
    nxt = DEVICE_TRANSITIONS.get((t.state, event))
    if nxt is None:
        return False  # a repeat, or a record after the decision: nothing changes
    t.state = nxt
    if event == "push":
        t.pushed_at = now
    if event in ("committed", "failed", "timeout"):
        t.finished_at = now
        t.outcome, t.reason, t.detail = outcome or nxt, reason, detail[:300]
    elif event in ("reverted", "revert_failed"):
        t.reason, t.detail = reason, detail[:300]
    return True


def _transition(r: Rollout, event: str, now: float, wave: int | None, reason: str) -> None:
    nxt = TRANSITIONS.get((r.state, event))
    if nxt is None:
        raise IllegalTransition(r.id, event, r.state)
    r.state = nxt
    r.reason = reason
    _decide(r, now, event, wave, reason)


def _decide(r: Rollout, now: float, kind: str, wave: int | None, reason: str) -> None:
    r.decisions.append(Decision(round(now, 3), kind, None if wave is None else wave + 1, reason))


def _push(r: Rollout, now: float) -> list[Command]:
    params: dict[str, Any] = {"model": r.model, "version": r.version, "deployment": r.id}
    if r.registry:
        params["registry"] = r.registry
    out = []
    for t in r.members(r.wave):
        if t.state == WAITING:
            _device_event(t, "push", now)
            out.append(Command(t.device, "update", f"{r.id}.update", dict(params),
                               now + r.policy.wave_timeout_s))
    if out:
        _decide(r, now, "push", r.wave,
                f"{r.label} pushed to {len(out)} device(s): {_names([c.device for c in out])}")
    return out


def _join(r: Rollout, now: float, view: Mapping[str, DeviceView]) -> None:
    """Group members that joined since the rollout was created go into the last wave."""
    r.joined = True
    if r.group is None:
        return
    new = sorted(d for d, v in view.items() if r.group in v.groups and d not in r.targets)
    added = [d for d in new if view[d].active != r.label]
    for d in added:
        r.targets[d] = Target(d, r.wave)
    if added:
        r.sizes[-1] += len(added)
        _decide(r, now, "join", r.wave,
                f"{len(added)} device(s) joined group {r.group} during the rollout and get "
                f"{r.label} in the last wave: {_names(added)}")


def _evaluate(r: Rollout, now: float) -> bool:
    """Advance or halt the current wave if its conditions hold; True if it advanced."""
    m = r.members(r.wave)
    n = len(m)
    ok = sum(1 for t in m if t.state in SUCCEEDED)
    bad = sum(1 for t in m if t.state in ERRORED)
    done = ok + bad
    need = min(r.policy.min_executed, n)
    k = r.wave + 1
    p = r.policy
    if bad and bad * 100 >= p.error_threshold * n and done >= need:
        _halt(r, now, f"wave {k}: {bad} of {n} device(s) failed ({_pct(bad, n)}) >= error "
                      f"threshold {p.error_threshold:g}% with {done} finished (min executed "
                      f"{need}); failed: {_failures(m)}")
        return False
    if ok * 100 >= p.success_threshold * n:
        last = r.wave + 1 >= len(r.sizes)
        if last and any(t.state in PENDING for t in r.targets.values()):
            return False  # finished only when every device has an outcome (or timed out)
        _advance(r, now, f"wave {k}: {ok} of {n} device(s) committed ({_pct(ok, n)}) >= "
                         f"success threshold {p.success_threshold:g}%")
        return r.state == RUNNING
    if done == n:
        _halt(r, now, f"wave {k}: every device finished and {ok} of {n} committed "
                      f"({_pct(ok, n)}) < success threshold {p.success_threshold:g}%; "
                      f"failed: {_failures(m)}")
    return False


def _advance(r: Rollout, now: float, reason: str) -> None:
    if r.wave + 1 >= len(r.sizes):
        ok = sum(1 for t in r.targets.values() if t.state in SUCCEEDED)
        bad = sum(1 for t in r.targets.values() if t.state in ERRORED)
        skipped = sum(1 for t in r.targets.values() if t.state == SKIPPED)
        _transition(r, "finish", now, r.wave,
                    f"{reason}; finished: {ok} committed, {bad} failed, {skipped} skipped")
        return
    _transition(r, "advance", now, r.wave, f"{reason}: on to wave {r.wave + 2}")
    r.wave += 1
    r.wave_started_at = now


def _halt(r: Rollout, now: float, reason: str) -> None:
    act = ("rollback sent to the wave's committed devices" if r.policy.on_halt == "rollback"
           else "paused; resume to go on, abort to stop")
    _transition(r, "halt", now, r.wave, f"{reason}; {act}")
    if r.policy.on_halt == "rollback":
        n = sum(1 for t in r.members(r.wave) if t.state == COMMITTED)
        _decide(r, now, "rollback", r.wave, f"rollback to {n} committed device(s) of the wave")


def _failures(m: list[Target]) -> str:
    bad = [t for t in m if t.state in ERRORED]
    return ", ".join(f"{t.device} {t.outcome}{' ' + t.reason if t.reason else ''}"
                     for t in bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")


def _names(devices: list[str], limit: int = 8) -> str:
    more = f" (+{len(devices) - limit} more)" if len(devices) > limit else ""
    return ", ".join(devices[:limit]) + more


def _pct(a: int, n: int) -> str:
    return f"{100 * a / n:.0f}%" if n else "-"


def _ago(ts: float | None, now: float) -> str:
    return "never" if ts is None else f"{max(0.0, now - ts):.0f} s ago"

