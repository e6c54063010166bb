"""A flood of hostile command payloads over a real broker: each is answered, the agent lives.

500 payloads nested 60,000 deep (under the 64 KiB cap; they used to raise RecursionError past
the parser: no reply, a traceback each), mixed with payloads json.loads accepts but we do
not (NaN, a 5,000-digit number, duplicate keys) and a burst of valid ``snapshot`` commands
(rate-limited). Every payload gets exactly one reply (or is counted), nothing is logged as
a traceback, and the agent still answers and publishes afterwards.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

from edge_agent.mqtt.testing import Mosquitto, Recorder
from tests.support.mqtt_agent import AgentProc, write_config

DEEP = b"[" * 60_000
ODD = [b'{"id": "nan", "params": {"x": NaN}}', b'{"id": "big", "params": {"n": ' + b"9" * 5000
       + b"}}", b'{"id": "dup", "id": "dup2"}', b'{"id": "inf", "expires_at": 1e999}',
       b"\xff\xfe\x00"]


def test_flood_of_deep_payloads_every_one_answered(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", mosquitto.port, interval_s=0.5)
    agent = AgentProc(cfg, "--snapshot")
    rec = Recorder(mosquitto.port, ["flood/replies", "edge/dev1/metrics", "edge/dev1/snapshot"],
                   client_id="flood")
    sent: dict[bytes, str] = {}  # correlation -> what

    def send(name: str, payload: bytes, what: str) -> None:
        corr = str(len(sent)).encode()
        sent[corr] = what
        rec.publish(f"edge/dev1/cmd/{name}", payload, correlation=corr,
                    response_topic="flood/replies")

    def replies() -> dict[bytes, list[dict[str, Any]]]:
        out: dict[bytes, list[dict[str, Any]]] = collections.defaultdict(list)
        for m in list(rec.messages):
            if m.topic == "flood/replies" and m.correlation is not None:
                out[m.correlation].append(json.loads(m.payload))
        return out

    try:
        assert rec.wait(lambda r: len(r.on("edge/dev1/metrics")) >= 1)
        for i in range(500):
            send("ping", DEEP, "deep")
            if i % 50 == 0:
                for odd in ODD:
                    send("ping", odd, "odd")
            if i % 25 == 0:
                send("snapshot", json.dumps({"id": f"snap-{i}"}).encode(), "snapshot")
        assert rec.wait(lambda r: len(replies()) == len(sent), timeout=120), (
            f"{len(replies())} of {len(sent)} answered")
        got = replies()
        assert all(len(v) == 1 for v in got.values())  # exactly one reply each
        codes = collections.Counter(
            (sent[c], v[0]["error"]["code"] if not v[0]["ok"] else "ok") for c, v in got.items())
        print("replies by (payload, code):", dict(codes))
        assert {w for w, _ in codes} == {"deep", "odd", "snapshot"}
        assert {c for w, c in codes if w != "snapshot"} <= {"invalid_payload", "busy"}
        assert codes[("deep", "invalid_payload")] > 0
        snap = {c for w, c in codes if w == "snapshot"}
        assert "ok" in snap and snap <= {"ok", "rate_limited", "busy"}
        jpegs = [m for m in rec.messages if m.topic == "edge/dev1/snapshot"]
        assert len(jpegs) == codes[("snapshot", "ok")]  # a refused snapshot published nothing
        # the agent lives, answers, publishes; its counters add up to what was sent
        assert agent.proc.poll() is None
        rec.publish("edge/dev1/cmd/ping", b'{"id": "after-flood"}', correlation=b"after",
                    response_topic="flood/replies")
        assert rec.wait(lambda r: b"after" in replies())
        assert replies()[b"after"][0]["ok"] is True

        def counted(m: dict[str, Any]) -> int:
            mq = m.get("mqtt", {})
            return sum(mq.get(k, 0) for k in ("commands_ok", "commands_invalid", "commands_busy",
                                              "commands_rate_limited", "commands_failed"))

        assert rec.wait(lambda r: any(counted(m) == len(sent) + 1
                                      for m in r.on("edge/dev1/metrics")), timeout=20)
    finally:
        rec.close()
        agent.stop()
    log = agent.log.read_text()
    assert "Traceback" not in log and "RecursionError" not in log
    refusals = [ln for ln in log.splitlines() if "refused command" in ln]
    assert 1 <= len(refusals) <= 6, refusals  # one line per error code, not one per payload


def test_fleet_cmd_snapshot_out_saves_the_jpeg(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """issue 12: `fleet cmd DEVICE snapshot --out FILE.jpg` saves the picture the device sends."""
    from tests.support.helpers import run_cli

    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", mosquitto.port, interval_s=0.5)
    agent = AgentProc(cfg, "--snapshot")
    rec = Recorder(mosquitto.port, ["edge/dev1/metrics"], client_id="snap-out")
    try:
        assert rec.wait(lambda r: len(r.on("edge/dev1/metrics")) >= 1)
        out = tmp_path / "dev1.jpg"
        broker = f"127.0.0.1:{mosquitto.port}"
        r = run_cli("fleet", "cmd", "dev1", "snapshot", "--out", str(out), "--broker", broker)
        assert r.returncode == 0, r.stderr
        reply = json.loads(r.stdout)
        assert reply["ok"] and reply["saved"] == {"path": str(out), "bytes": out.stat().st_size}
        assert out.read_bytes()[:2] == b"\xff\xd8"
        r = run_cli("fleet", "cmd", "dev1", "ping", "--out", str(out), "--broker", broker)
        assert r.returncode == 2 and "--out FILE saves a snapshot" in r.stderr
    finally:
        rec.close()
        agent.stop()
