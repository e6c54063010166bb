"""The simulated device's pure logic: the MQTT contract it speaks (docs/mqtt.md)."""

from __future__ import annotations

import json
import random

from edge_agent.fleet.simdevice import UPDATE_STEPS, SimDevice, SimSettings
from edge_agent.mqtt.fleet import FleetState


def dev(**kw: object) -> SimDevice:
    s = SimSettings(**kw)  # type: ignore[arg-type]
    return SimDevice("sim-00001", s, ["g"], random.Random(1), 100.0)


def cmd(d: SimDevice, name: str, now: float = 101.0, **body: object) -> dict[str, object]:
    reply, _ = d.command(name, json.dumps(body).encode(), now, "fleet/x/reply", b"corr")
    assert reply is not None and reply.topic == "fleet/x/reply" and reply.correlation == b"corr"
    return reply.body


def test_the_will_reserves_its_seq_before_the_online_status() -> None:
    d = dev()
    will, online = d.will(1.0), d.online(1.0)
    assert (will.retain, will.body["online"], will.body["seq"]) == (True, False, 1)
    assert (online.body["online"], online.body["seq"], online.body["groups"]) == (True, 2, ["g"])
    assert online.body["models"]["active"] == "sim-model 1"  # type: ignore[index]


def test_an_update_runs_the_state_machine_once_and_a_repeat_is_answered_from_memory() -> None:
    d = dev()
    params = {"model": "m", "version": "2", "deployment": "r1"}
    r = cmd(d, "update", id="r1.update", params=params)
    assert r["ok"] and r["result"] == {"deployment": "r1", "state": "received"}
    assert cmd(d, "update", id="other", params=params)["error"]["code"] == "busy"  # type: ignore[index]
    states = []
    while True:
        rec, final = d.update_step(102.0)
        assert rec is not None
        states.append(rec.body["state"])
        if final:
            break
    assert states == [*UPDATE_STEPS, "committed"] and d.active == "m 2" and d.updates_run == 1
    again = cmd(d, "update", id="r1.update", params=params)
    assert again["repeat"] is True and d.updates_run == 1 and len(d.pushes) == 3
    assert cmd(d, "rollback", id="r1.rollback")["ok"] and d.active == "sim-model 1"


def test_failures_expiry_and_unknown_commands() -> None:
    d = dev(fail_rate=1.0)
    cmd(d, "update", id="a", params={"model": "m", "version": "2"})
    recs = [d.update_step(1.0)[0] for _ in range(len(UPDATE_STEPS) + 1)]
    assert recs[-1] is not None and recs[-1].body["state"] == "rolled_back"
    assert recs[-1].body["reason"] == "latency_budget" and d.active == "sim-model 1"
    rej = dev(reject_rate=1.0)
    cmd(rej, "update", id="a", params={"model": "m", "version": "2"})
    assert [rej.update_step(1.0)[0].body["state"] for _ in range(4)][-1] == "rejected"  # type: ignore[union-attr]
    assert cmd(d, "update", 200.0, id="b", params={"model": "m", "version": "2"},
               expires_at=150.0)["error"]["code"] == "expired"  # type: ignore[index]
    assert cmd(d, "frobnicate", id="c")["error"]["code"] == "unknown_command"  # type: ignore[index]


def test_deliberate_drops_are_exactly_the_gaps_a_consumer_counts() -> None:
    d = dev(drop_rate=0.3)
    f = FleetState()
    now = 1.0
    for _ in range(300):
        now += 1
        for p in (d.metrics(now), d.event(now)):
            if p is not None:
                f.ingest(p.topic, p.payload(), now)
    for p in d.closing_records(now):  # none dropped: a trailing drop shows as a gap too
        f.ingest(p.topic, p.payload(), now)
    row = f.devices["sim-00001"]
    assert d.dropped["metrics"] > 50 and d.dropped["events"] > 50
    assert {s: row.seqs[s].gaps for s in ("metrics", "events")} == dict(d.dropped)
    assert d.metrics(now).body["mqtt"]["outbox"]["dropped"]["metrics.records"] == \
        d.dropped["metrics"]  # type: ignore[union-attr,index]
