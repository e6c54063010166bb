"""``fleet serve`` against a real mosquitto with MQTT test agents (tests/integration/mqtt/
harness.py) as devices: exact seq-gap accounting across its own SIGKILL and a broker outage,
the HTTP API's token and its one-line refusals, the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.fleet.errors import FleetServerError, RolloutError
from edge_agent.mqtt.testing import Mosquitto, Recorder
from tests.support.fleet_serve import FleetServe, TcpCut
from tests.support.helpers import run_cli
from tests.support.mqtt_agent import AgentProc, write_config

STREAMS = ("metrics", "events")


def device(tmp: Path, name: str, port: int, **mqtt: Any) -> AgentProc:
    """A test agent with an outbox of 10 records, paused while ``<tmp>/pause`` exists."""
    cfg = write_config(tmp / f"{name}.toml", tmp / f"{name}-state", port, device_id=name,
                       interval_s=0.1, **mqtt)
    cfg.write_text(cfg.read_text() + "[mqtt.outbox]\nmax_records = 10\n")
    return AgentProc(cfg, "--pause-file", str(tmp / "pause"))


@pytest.mark.parametrize("outage", ["devices cut off", "broker restart"])
def test_lost_records_equal_the_outbox_drops_across_sigkill_and_an_outage(
    tmp_path: Path, mosquitto_factory: Callable[..., Mosquitto], outage: str
) -> None:
    """The devices' outbox caps drop records while they cannot reach the broker: fleet serve
    (SIGKILLed and restarted just before) counts exactly those as missing. ``devices cut off``:
    a TCP cut between devices and broker, the default shared subscriptions. ``broker
    restart``: mosquitto itself restarts, and forgets shared subscriptions when it does, so
    this one runs fleet serve with ``shared = false`` (docs/fleet.md)."""
    broker = mosquitto_factory(persistence=True)
    cut = TcpCut(broker.port).up()
    restart = outage == "broker restart"
    serve = FleetServe(tmp_path / "serve", broker.port,
                       fleet={"shared": False} if restart else None).start()
    rec = Recorder(broker.port, ["edge/+/metrics", "edge/+/events"], client_id="witness")
    names = ("d1", "d2")
    agents = [device(tmp_path, n, broker.port if restart else cut.port) for n in names]
    try:
        serve.wait(lambda: all(serve.devices().get(n, {}).get("seq", {}).get("metrics")
                               for n in names))
        serve.kill()  # SIGKILL while the devices publish: the broker keeps its session
        time.sleep(1.5)
        serve.start()
        pause = tmp_path / "pause"

        def total(r: Recorder) -> int:
            return sum(len(r.on(f"edge/{d}/{s}")) for d in names for s in STREAMS)

        def settled(r: Recorder) -> bool:  # everything made has arrived, nothing more comes
            n = total(r)
            time.sleep(1.0)
            return n == total(r)

        # nothing in flight at the cut: a record handed to paho before the link went down is
        # re-sent by paho after it even if the full outbox dropped it (the count would be off)
        pause.touch()
        assert rec.wait(settled, 30)
        before = total(rec)
        broker.stop() if restart else cut.down()
        time.sleep(0.5)
        pause.unlink()  # records made now wait in the outbox; it keeps the newest 10
        time.sleep(3)
        pause.touch()
        broker.start() if restart else cut.up()
        assert rec.wait(lambda r: total(r) >= before + 2 * 10, 30)  # both backlogs arrive
        assert rec.wait(settled, 30)
        back = time.time()
        pause.unlink()

        def after(dev: str, stream: str) -> list[dict[str, Any]]:
            """Records made after the pause: they carry the final drop count."""
            return [m for m in rec.on(f"edge/{dev}/{stream}") if m["ts"] > back]

        assert rec.wait(lambda r: all(after(n, s) for n in names for s in STREAMS), 30)
        for n in names:
            dropped = after(n, "metrics")[0]["mqtt"]["outbox"]["dropped"]
            for s in STREAMS:
                first_after = after(n, s)[0]["seq"]
                row = serve.wait(lambda n=n, s=s, seq=first_after: (
                    serve.devices()[n]["seq"][s]["last"] >= seq and serve.devices()[n]), 30)
                t = row["seq"][s]
                want = dropped.get(f"{s}.records", 0)
                assert t["missing"] == want, (n, s, t, dropped)  # no more, no fewer
                assert t["received"] - t["duplicates"] + t["missing"] == \
                    t["last"] - t["first"] + 1  # every seq counted once
            assert dropped.get("metrics.records", 0) >= 10, dropped
        lost = {(x["device"], x["stream"]): x["missing"] for x in serve.get("/v1/lost")}
        total = sum(lost.values())
        assert total >= 20
        text = run_cli("fleet", "status", "--server", serve.url).stdout
        assert all(n in text for n in names)
        import urllib.request

        prom = urllib.request.urlopen(f"{serve.url}/metrics", timeout=10).read().decode()
        got = sum(float(line.rsplit(" ", 1)[1]) for line in prom.splitlines()
                  if line.startswith('edge_fleet_records_lost_total{kind="missing"'))
        assert got == total, prom
        assert 'edge_fleet_devices{state="online"} 2.0' in prom
    finally:
        for a in agents:
            a.kill()
        rec.close()
        serve.stop()
        cut.down()


def test_token_refusals_and_a_rollout_the_devices_refuse(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    token = "t0ken-" + "x" * 20
    serve = FleetServe(tmp_path / "serve", mosquitto.port, token=token).start()
    agents = [device(tmp_path, n, mosquitto.port) for n in ("h1", "h2", "h3")]
    try:
        from edge_agent.fleet.client import FleetClient

        with pytest.raises(FleetServerError, match="token was refused"):
            FleetClient(serve.url).get("/v1/devices")
        serve.wait(lambda: len(serve.devices()) == 3)
        with pytest.raises(RolloutError, match="the last wave must be 100%"):
            serve.post("/v1/rollouts", {"model": "m", "version": "2", "group": "lab",
                                        "waves": "1,50%"})
        with pytest.raises(RolloutError, match="ghost: not known to the fleet"):
            serve.post("/v1/rollouts", {"model": "m", "version": "2", "devices": ["ghost"]})
        with pytest.raises(RolloutError, match="r-none: no such rollout"):
            serve.post("/v1/rollouts/r-none/pause")
        r = run_cli("fleet", "rollout", "start", "--model", "m", "--version", "2", "--group",
                    "lab", "--waves", "1,100%", "--min-executed", "1", "--error-threshold",
                    "50%", "--server", serve.url, "--token-file", str(tmp_path / "serve/token"),
                    "--json")
        assert r.returncode == 0, r.stderr
        rid = json.loads(r.stdout)["id"]
        # the test agents have no update component: the canary refuses, the rollout halts
        st = serve.wait(lambda: (x := serve.get(f"/v1/rollouts/{rid}"))["state"] == "halted"
                        and x, 30)
        assert "refused unknown_command" in st["reason"]
        assert [w["size"] for w in st["progress"]] == [1, 2]
        assert st["progress"][1]["waiting"] == 2  # nothing pushed beyond the canary
        r = run_cli("fleet", "rollout", "pause", rid, "--server", serve.url, "--token-file",
                    str(tmp_path / "serve/token"))
        assert r.returncode == RolloutError.exit_code
        assert r.stderr.strip().splitlines() == [f"error: rollout {rid} is halted: cannot "
                                                 "pause it"]
        r = run_cli("fleet", "rollout", "list", "--server", serve.url)
        assert r.returncode == FleetServerError.exit_code and "token" in r.stderr
    finally:
        for a in agents:
            a.kill()
        serve.stop()


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet.toml"
    cfg.write_text('[fleet]\nlisten = "0.0.0.0:8780"\ndatabase = "f.sqlite"\n')
    r = run_cli("fleet", "serve", "-c", str(cfg))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: fleet.listen 0.0.0.0:8780: binding beyond loopback needs fleet.token_file "
        "(the HTTP API starts rollouts)"]
    cfg.write_text('[fleet]\nlisten = "127.0.0.1:1"\nshare_group = "a/b"\n')
    r = run_cli("fleet", "serve", "-c", str(cfg))
    assert r.returncode == 2 and f"{cfg}:3: fleet.share_group" in r.stderr
