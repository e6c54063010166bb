"""Issue #16's acceptance: 12 real agents (``edge-agent run``, the tiny digits model, a
synthetic camera) in two groups, a real mosquitto, a registry served by nginx, ``fleet serve``.

- group north (8): waves ``1,25%,100%`` advance wave by wave; ``fleet serve`` is SIGKILLed
  mid-wave 3 and restarted: the rollout goes on and no device gets a second ``update``; n08 is
  offline during its wave: pending until the wave timeout, then failed (said so); back later
  it gets the queued command after its ``expires_at`` and does not run it;
- group south (4): s03, s04 trust another release key (they reject the release): wave 2 halts
  at the error threshold and ``--on-halt rollback`` takes its committed device s02 back to the
  old version;
- the dashboard in headless chromium during the rollout shows the waves and their progress.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.mqtt.testing import Mosquitto, Recorder
from edge_agent.updates.publish import publish
from tests.support.fleet_serve import FleetServe
from tests.support.helpers import MODELS
from tests.support.mqtt_agent import AgentProc
from tests.support.updates import new_key, nginx, seed_store

DIGITS = MODELS / "digits_int8.tflite"
NORTH = [f"n{i:02d}" for i in range(1, 9)]
SOUTH = [f"s{i:02d}" for i in range(1, 5)]
DISTRUST = {"s03", "s04"}
WAVE_TIMEOUT_S = 60


def agent_config(base: Path, name: str, group: str, port: int, registry: str,
                 pub: Path) -> Path:
    d = base / name
    state = d / "state"
    shutil.copytree(base / "template", state)
    cfg = d / "agent.toml"
    lines = [
        "[device]", f'id = "{name}"', f'state_dir = "{state}"', f'groups = ["{group}"]',
        "[camera]", 'source = "synthetic"', "width = 64", "height = 48", "fps = 10",
        "[metrics]", "interval_s = 1.0",
        "[mqtt]", "enabled = true", 'host = "127.0.0.1"', f"port = {port}",
        "[updates]", f"registry = {json.dumps(registry)}",
        f"trusted_keys = [{json.dumps(str(pub))}]",
        "trial_inferences = 10", "trial_seconds = 8",
    ]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def screenshot(url: str, out: Path) -> str:
    """The page in headless chromium after its scripts ran: a PNG and the DOM's text."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does)")
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--window-size=1280,1100", "--virtual-time-budget=8000"]
    subprocess.run([exe, *flags, f"--screenshot={out}", url], capture_output=True, timeout=90,
                   check=True)
    dom = subprocess.run([exe, *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=90, check=True)
    return dom.stdout


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("fleet12")
    key, pub = new_key(base)
    _, other_pub = new_key(base, "other.key")
    reg = base / "registry"
    reg.mkdir()
    publish(DIGITS, name="digits", version="1.0", key=key, to=reg, seq=1)
    publish(DIGITS, name="digits", version="2.0", key=key, to=reg, seq=2)
    broker = Mosquitto(base / "broker").start()
    agents: dict[str, AgentProc] = {}
    serve = None
    try:
        with nginx(reg, base / "nginx") as server:
            seed_store(base / "template", server.http_url, pub, "digits", "1.0", [1, 8, 8, 1])
            configs = {n: agent_config(base, n, "north", broker.port, server.http_url, pub)
                       for n in NORTH}
            configs |= {n: agent_config(base, n, "south", broker.port, server.http_url,
                                        other_pub if n in DISTRUST else pub) for n in SOUTH}
            serve = FleetServe(base / "serve", broker.port).start()
            for n, cfg in configs.items():
                agents[n] = AgentProc(cfg, real=True)
            yield {"base": base, "broker": broker, "serve": serve, "agents": agents,
                   "configs": configs}
    finally:
        for a in agents.values():
            a.stop()
        if serve is not None:
            serve.stop()
        broker.stop()


def test_rollouts_in_waves_halt_rollback_sigkill_offline_and_the_dashboard(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    serve: FleetServe = fleet["serve"]
    agents: dict[str, AgentProc] = fleet["agents"]
    broker: Mosquitto = fleet["broker"]
    pushes = Recorder(broker.port, ["edge/+/cmd/update", "edge/+/update", "edge/n08/metrics"],
                      client_id="pushes", persistent=False)
    try:
        def online() -> dict[str, dict[str, Any]]:
            return {d: row for d, row in serve.devices().items()
                    if row["online"] and row["active"] == "digits 1.0"}

        serve.wait(lambda: len(online()) == 12, 150, 1.0)
        agents["n08"].stop()  # offline (clean stop: retained offline status) during its wave
        serve.wait(lambda: serve.devices()["n08"]["online"] is False, 30)

        north = serve.post("/v1/rollouts", {
            "model": "digits", "version": "2.0", "group": "north", "waves": "1,25%,100%",
            "success_threshold": "80%", "error_threshold": "20%", "min_executed": 3,
            "wave_timeout": f"{WAVE_TIMEOUT_S}s"})
        south = serve.post("/v1/rollouts", {
            "model": "digits", "version": "2.0", "group": "south", "waves": "1,100%",
            "success_threshold": "95%", "error_threshold": "50%", "min_executed": 3,
            "wave_timeout": f"{WAVE_TIMEOUT_S}s", "on_halt": "rollback"})
        assert [w["size"] for w in north["progress"]] == [1, 1, 6]
        assert [w["size"] for w in south["progress"]] == [1, 3]
        rid = north["id"]

        def status(r: str) -> dict[str, Any]:
            return serve.get(f"/v1/rollouts/{r}")  # type: ignore[no-any-return]

        # north: wave by wave; SIGKILL fleet serve once wave 3 is pushed and updating
        st = serve.wait(lambda: (x := status(rid))["wave"] == 3 and x["progress"][2]
                        ["pending"] == 6 and x, 150, 0.5)
        kinds = [d["kind"] for d in st["decisions"]]
        assert kinds[:5] == ["start", "push", "advance", "push", "advance"], kinds
        serve.kill()
        time.sleep(2)
        serve.start()
        shot = tmp_path / "dashboard.png"
        dom = screenshot(serve.url + "/", shot)
        assert shot.stat().st_size > 20_000
        assert rid in dom and "wave 3" in dom and "committed" in dom, dom[-3000:]
        out = os.environ.get("FLEET_SCREENSHOT_DIR")
        if out:
            shutil.copy(shot, Path(out) / "fleet-dashboard.png")

        st = serve.wait(lambda: (x := status(rid))["state"] == "finished" and x,
                        WAVE_TIMEOUT_S + 90, 1.0)
        by = {t["device"]: t for t in st["targets"]}
        assert all(by[n]["state"] == "committed" for n in NORTH[:7]), by
        assert by["n08"]["state"] == "timed_out" and "offline" in by["n08"]["detail"]
        timeouts = [d for d in st["decisions"] if d["kind"] == "timeout"]
        assert [d["reason"].split(":")[0] for d in timeouts] == ["n08"]
        assert "counted as failed" in timeouts[0]["reason"]
        assert "7 committed, 1 failed, 0 skipped" in st["reason"]

        # south: halted at the error threshold, its committed device rolled back
        ss = serve.wait(lambda: (x := status(south["id"]))["state"] == "halted" and
                        x["targets"] and {t["device"]: t for t in x["targets"]}["s02"]
                        ["state"] == "reverted" and x, 120, 1.0)
        sby = {t["device"]: t for t in ss["targets"]}
        assert sby["s01"]["state"] == "committed"  # wave 1 stays on the new version
        assert {sby[d]["outcome"] for d in DISTRUST} == {"rejected"}
        assert "2 of 3 device(s) failed (67%) >= error threshold 50%" in ss["reason"]
        assert any(d["kind"] == "rollback" for d in ss["decisions"])
        serve.wait(lambda: serve.devices()["s02"]["active"] == "digits 1.0", 30)
        devs = serve.devices()
        updated = [*NORTH[:7], "s01"]
        assert {n: devs[n]["active"] for n in updated} == {n: "digits 2.0" for n in updated}

        # every device got one update command (SIGKILL included): a command published but
        # not yet marked sent when fleet serve was killed is published again with the same
        # id, by design (fleet/service.py); none ran it twice
        ids = {n: {m["id"] for m in pushes.on(f"edge/{n}/cmd/update")} for n in NORTH + SOUTH}
        assert {n: len(v) for n, v in ids.items()} == {n: 1 for n in NORTH + SOUTH}, ids
        for dev in NORTH[:7] + SOUTH:
            received = [r for r in pushes.on(f"edge/{dev}/update")
                        if r.get("deployment") in (rid, south["id"]) and
                        r.get("state") == "received"]
            assert len(received) == 1, (dev, received)

        # n08 comes back after the wave timeout: the queued command has expired, not run
        agents["n08"] = AgentProc(fleet["configs"]["n08"], real=True)
        serve.wait(lambda: serve.devices()["n08"]["online"], 60)
        assert pushes.wait(lambda r: any(m.get("mqtt", {}).get("commands_expired") for m in
                                          r.on("edge/n08/metrics")), 60)
        assert not [r for r in pushes.on("edge/n08/update") if r.get("state") == "received"]
        assert serve.devices()["n08"]["active"] == "digits 1.0"
    finally:
        pushes.close()

