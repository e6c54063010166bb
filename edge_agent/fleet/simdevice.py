"""One simulated device speaking the MQTT contract of docs/mqtt.md, as pure logic (no sockets).

:class:`SimDevice` makes the records a real agent makes — the retained ``status`` (online;
the last will offline, its ``seq`` reserved first as the agent does), ``metrics`` and
``events`` with per-stream ``seq``, ``update`` records following the device's own update state
machine (``received`` .. ``committed``, or ``rolled_back`` / ``rejected`` when it fails) — and
answers commands like the agent's dispatcher: one reply per command on its response topic with
its correlation data, a repeated ``id`` answered from memory (``"repeat": true``, not run
again), ``expired`` past ``expires_at``, ``busy`` while an update runs, ``unknown_command``.

Deliberate drops: a record chosen to be dropped consumes its ``seq`` and is never published
(as an outbox cap would), and is counted (``dropped``) and reported in the next metrics like
the agent's ``mqtt.outbox.dropped`` — a consumer must count exactly those as missing.
:mod:`.simulate` drives many of these over real MQTT connections.
"""

from __future__ import annotations

import json
import random
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

UPDATE_STEPS = ("received", "downloading", "verifying", "preflight", "activating", "trial")
"""The device's update states before its final one (edge_agent/updates/rollout.py)."""


@dataclass(frozen=True)
class SimSettings:
    devices: int = 100
    name: str = "sim"  # device ids <name>-00001 ...
    root: str = "edge"
    groups: tuple[str, ...] = ("sim",)  # device i is in groups[i % len(groups)]
    metrics_s: float = 10.0
    events_per_s: float = 0.05  # per device
    drop_rate: float = 0.0  # metrics/events records deliberately dropped
    fail_rate: float = 0.0  # updates that end rolled_back (trial unhealthy)
    reject_rate: float = 0.0  # updates that end rejected (bad manifest)
    offline_rate: float = 0.0  # devices that go away once (last will), for offline_s
    offline_s: float = 20.0
    offline_after_s: float = 5.0  # ... at a random time within this many seconds
    update_step_s: float = 0.2  # each update state lasts this long
    model: str = "sim-model"
    version: str = "1"
    seed: int = 1

    def device_id(self, i: int) -> str:
        return f"{self.name}-{i + 1:05d}"


@dataclass
class Publish:
    topic: str
    body: dict[str, Any]
    retain: bool = False
    correlation: bytes | None = None

    def payload(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass
class SimDevice:
    id: str
    settings: SimSettings
    groups: list[str]
    rng: random.Random
    started_at: float
    active: str = ""
    previous: str | None = None
    seqs: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # stream -> records dropped
    published: Counter[str] = field(default_factory=Counter)
    replies: dict[str, dict[str, Any]] = field(default_factory=OrderedDict)  # id -> reply
    update: dict[str, Any] | None = None  # the update running: deployment, model, version...
    updates_run: int = 0  # update commands run (repeats and refusals not counted)
    pushes: list[float] = field(default_factory=list)  # each update command delivered
    final_at: float | None = None  # the last final update record
    outcomes: list[str] = field(default_factory=list)
    frame: int = 0
    closing: bool = False  # the last records: none dropped, so every drop shows as a gap

    def __post_init__(self) -> None:
        if not self.active:
            self.active = f"{self.settings.model} {self.settings.version}"

    @property
    def prefix(self) -> str:
        return f"{self.settings.root}/{self.id}"

    def _next(self, stream: str) -> int:
        self.seqs[stream] += 1
        return self.seqs[stream]

    def _record(self, stream: str, body: dict[str, Any], now: float) -> Publish | None:
        seq = self._next(stream)
        # never the first of a stream: a consumer counts from the first seq it sees
        if stream in ("metrics", "events") and not self.closing and seq > 1 and \
                self.rng.random() < self.settings.drop_rate:
            self.dropped[stream] += 1  # its seq is used: the consumer sees the gap
            return None
        self.published[stream] += 1
        return Publish(f"{self.prefix}/{stream}",
                       {**body, "seq": seq, "ts": round(now, 3), "device": self.id})

    # -- status --------------------------------------------------------------------------------
    def will(self, now: float) -> Publish:
        """The last will of the next connection (its seq reserved now, as the agent does)."""
        seq = self._next("status")
        return Publish(f"{self.prefix}/status", self._status(False, seq, now), retain=True)

    def online(self, now: float) -> Publish:
        self.published["status"] += 1
        return Publish(f"{self.prefix}/status", self._status(True, self._next("status"), now),
                       retain=True)

    def stopped(self, now: float) -> Publish:
        """The offline status of a clean stop (the agent publishes it before disconnecting)."""
        body = self._status(False, self._next("status"), now)
        body["reason"] = "stopped"
        self.published["status"] += 1
        return Publish(f"{self.prefix}/status", body, retain=True)

    def closing_records(self, now: float) -> list[Publish]:
        """Before stopping: one record (never dropped) on each stream that dropped some, so
        a consumer sees every deliberate drop as a gap."""
        self.closing = True
        out = [self.metrics(now) if s == "metrics" else self.event(now)
               for s in sorted(self.dropped)]
        return [p for p in out if p is not None]

    def _status(self, online: bool, seq: int, now: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "seq": seq, "device": self.id, "online": online,
            "state": "online" if online else "offline", "agent_version": "sim",
            "started_at": round(self.started_at, 3), "ts": round(now, 3),
            "groups": list(self.groups)}
        if not online:
            body["reason"] = "connection lost"
            return body
        name, version = self.active.rsplit(" ", 1)
        body.update({"model": {"name": name, "version": version}, "backend": "litert",
                     "models": {"active": self.active, "previous": self.previous,
                                "trial": None, "store": {"state": "ok"}}})
        return body

    # -- telemetry -----------------------------------------------------------------------------
    def metrics(self, now: float) -> Publish | None:
        r = self.rng
        name = self.active.rsplit(" ", 1)[0]
        dropped = {f"{s}.records": n for s, n in sorted(self.dropped.items())}
        return self._record("metrics", {
            "interval_s": self.settings.metrics_s, "uptime_s": round(now - self.started_at, 1),
            "fps": {"processed": round(r.uniform(4.5, 5.5), 2), "dropped": 0},
            "latency_ms": {"e2e": {"p50": round(r.uniform(20, 30), 1),
                                   "p95": round(r.uniform(30, 45), 1)},
                           "invoke": {"p50": round(r.uniform(10, 15), 1),
                                      "p95": round(r.uniform(15, 25), 1)}},
            "cpu": {"process_percent": round(r.uniform(20, 60), 1)},
            "temperature": {"cpu_c": round(r.uniform(45, 65), 1)},
            "model": {"name": name, "backend": "litert", "delegate": "cpu"},
            "mqtt": {"connected": True, "outbox": {"open": True, "pending": 0,
                                                   "dropped": dropped}},
        }, now)

    def event(self, now: float) -> Publish | None:
        self.frame += int(self.rng.uniform(5, 50))
        r = self.rng
        return self._record("events", {
            "frame": self.frame, "model": self.active.rsplit(" ", 1)[0],
            "latency_ms": round(r.uniform(20, 40), 1),
            "detections": [{"label": "person", "score": round(r.uniform(0.5, 0.99), 2),
                            "box": [round(r.random(), 3) for _ in range(4)]}]}, now)

    # -- commands ------------------------------------------------------------------------------
    def command(self, name: str, payload: bytes, now: float, response_topic: str | None,
                correlation: bytes | None) -> tuple[Publish | None, bool]:
        """One command -> (its reply, whether an update started)."""
        topic = response_topic or f"{self.prefix}/cmd/{name}/reply"

        def reply(cid: str | None, ok: bool, result: Any = None, code: str = "",
                  message: str = "") -> Publish:
            body: dict[str, Any] = {"id": cid, "command": name, "device": self.id, "ok": ok,
                                    "ts": round(now, 3)}
            if ok:
                body["result"] = result if result is not None else {}
            else:
                body["error"] = {"code": code, "message": message}
            return Publish(topic, body, correlation=correlation)

        try:
            d = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return reply(None, False, code="invalid_payload", message="not JSON"), False
        if not isinstance(d, dict) or not isinstance(d.get("id"), str):
            return reply(None, False, code="invalid_payload", message="no id"), False
        cid = d["id"]
        if name == "update":
            self.pushes.append(now)
        if cid in self.replies:  # a repeat: answered from memory, not run again
            return Publish(topic, {**self.replies[cid], "repeat": True},
                           correlation=correlation), False
        exp = d.get("expires_at")
        if isinstance(exp, (int, float)) and now > exp:
            return reply(cid, False, code="expired",
                         message=f"expired {now - exp:.0f} s ago (expires_at)"), False
        raw = d.get("params")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        started = False
        if name == "ping":
            out = reply(cid, True, {"pong": True, "agent_version": "sim",
                                    "seq": dict(self.seqs)})
        elif name == "update":
            if self.update is not None:
                return reply(cid, False, code="busy", message="an update is running"), False
            if not params.get("model") or not params.get("version"):
                return reply(cid, False, code="invalid_params",
                             message="model and version are required"), False
            dep = str(params.get("deployment") or cid)
            r = self.rng.random()
            outcome = ("rejected" if r < self.settings.reject_rate else "rolled_back"
                       if r < self.settings.reject_rate + self.settings.fail_rate else
                       "committed")
            self.update = {"deployment": dep, "model": str(params["model"]),
                           "version": str(params["version"]), "step": 0, "outcome": outcome}
            self.updates_run += 1
            started = True
            out = reply(cid, True, {"deployment": dep, "state": "received"})
        elif name == "rollback":
            if self.previous is None:
                out = reply(cid, False, code="no_previous", message="no previous model")
            else:
                self.active, self.previous = self.previous, self.active
                out = reply(cid, True, {"active": self.active})
        else:
            return reply(cid, False, code="unknown_command",
                         message=f"unknown command {name!r}"), False
        self.replies[cid] = out.body
        while len(self.replies) > 256:
            self.replies.pop(next(iter(self.replies)))
        return out, started

    def update_step(self, now: float) -> tuple[Publish | None, bool]:
        """The running update's next record -> (record, whether it was the final one)."""
        u = self.update
        if u is None:
            return None, True
        step: int = u["step"]
        outcome = u["outcome"]
        if outcome == "rejected" and step == 3:  # refused at the preflight
            state, final = "rejected", True
        elif outcome == "rolled_back" and step == len(UPDATE_STEPS):  # the trial failed
            state, final = "rolled_back", True
        elif step == len(UPDATE_STEPS):
            state, final = "committed", True
        else:
            state, final = UPDATE_STEPS[step], False
        u["step"] = step + 1
        body: dict[str, Any] = {"deployment": u["deployment"], "model": u["model"],
                                "version": u["version"], "state": state, "final": final}
        if state == "rejected":
            body.update(reason="preflight", detail="input shape not fed by this device")
        elif state == "rolled_back":
            body.update(reason="latency_budget", detail="p95 over the release's budget")
        if final:
            self.update = None
            self.final_at = now
            self.outcomes.append(state)
            if state == "committed":
                self.previous, self.active = self.active, f"{u['model']} {u['version']}"
        return self._record("update", body, now), final

    def report(self) -> dict[str, Any]:
        return {"seq": dict(self.seqs), "dropped": dict(self.dropped),
                "published": dict(self.published), "updates_run": self.updates_run,
                "pushes": self.pushes, "final_at": self.final_at, "outcomes": self.outcomes,
                "active": self.active}
