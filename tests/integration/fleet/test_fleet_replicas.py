"""Two replicas of ``fleet serve`` on a real PostgreSQL, sharing the ingest through the MQTT 5
shared subscription of a real mosquitto, driven by ``fleet simulate``: the rollout leader is
SIGKILLed mid-rollout; the other replica takes the lock and continues the rollout; no device
runs the update twice; the records lost that the replicas counted together equal the
simulator's deliberate drops exactly, none counted twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.mqtt.testing import Mosquitto
from tests.support.fleet_serve import FleetServe, SimProc

pytestmark = pytest.mark.postgres

DEVICES = 24


def test_the_leader_killed_mid_rollout_is_replaced_without_a_second_push(
    tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto], pg_server: Any
) -> None:
    broker = mosquitto_factory(persistence=True)
    url = pg_server.new_database()
    serves = [FleetServe(tmp_path / f"serve{i}", broker.port, database=url,
                         fleet={"client_id": f"fleet-{i}"}) for i in (1, 2)]
    serves[0].start()
    serves[1].start()
    sim = SimProc(tmp_path / "sim", broker.port, DEVICES, "--groups", "g", "--metrics-interval",
                  "0.5", "--events-per-s", "1", "--drop-rate", "0.05", "--update-step-s",
                  "0.4", "--connect-rate", "50")
    try:
        a = serves[0]
        a.wait(lambda: len([d for d in a.devices().values() if d["online"]]) == DEVICES, 60)
        leaders = [s for s in serves if s.get("/healthz")["leader"]]
        assert len(leaders) == 1
        leader, other = leaders[0], next(s for s in serves if s is not leaders[0])
        # a rollout request to the replica that does not lead is forwarded to the leader
        r = other.post("/v1/rollouts", {"model": "sim-model", "version": "2", "group": "g",
                                        "waves": "1,25%,100%", "min_executed": 1,
                                        "wave_timeout": "60s"})
        rid = r["id"]
        assert leader.get(f"/v1/rollouts/{rid}")["id"] == rid
        assert other.post(f"/v1/rollouts/{rid}/pause")["state"] == "paused"  # forwarded too
        assert other.post(f"/v1/rollouts/{rid}/resume")["state"] == "running"

        def wave(s: FleetServe) -> int:
            return int(s.get(f"/v1/rollouts/{rid}")["wave"])
        leader.wait(lambda: wave(leader) >= 2, 60)  # wave 2 pushed
        leader.kill()  # mid-rollout: wave 2 updating
        other.wait(lambda: other.get("/healthz")["leader"], 30)
        # back as a follower (as Kubernetes restarts it): the records in flight to it at the
        # kill wait in its persistent session and come now
        leader.start()
        assert not leader.get("/healthz")["leader"]
        done = other.wait(lambda: (x := other.get(f"/v1/rollouts/{rid}"))["state"] ==
                          "finished" and x, 90)
        assert any(d["kind"] == "finish" for d in done["decisions"])
        sim_doc = sim.stop()
        devs = sim_doc["devices"]
        assert len(devs) == DEVICES
        assert {d: v["updates_run"] for d, v in devs.items()} == {d: 1 for d in devs}
        # a command the dead leader published but had not yet marked sent goes out again with
        # the same id: the device answers it as a repeat (above: it ran the update once)
        assert all(1 <= len(v["pushes"]) <= 2 for v in devs.values())
        assert all(v["active"] == "sim-model 2" for v in devs.values())
        assert all(t["state"] == "committed" for t in done["targets"])

        want = {(d, s): n for d, v in devs.items() for s, n in v["dropped"].items() if n}
        seen: dict[tuple[str, str], int] = {}

        def lost_matches() -> bool:
            seen.clear()
            seen.update({(x["device"], x["stream"]): x["missing"] for x in other.get("/v1/lost")})
            return seen == want
        try:
            other.wait(lost_matches, 30)
        except AssertionError as exc:  # say which gaps differ (failed once under load)
            diff = {k: (seen.get(k), want.get(k)) for k in seen.keys() | want.keys()
                    if seen.get(k) != want.get(k)}
            raise AssertionError(f"/v1/lost (got, want) where they differ: {diff}") from exc
        assert sum(sim_doc["dropped"].values()) > 0
        total = sum(x["missing"] for x in other.get("/v1/lost"))
        assert total == sum(sim_doc["dropped"].values())
    finally:
        sim.stop()
        for s in serves:
            s.kill()
