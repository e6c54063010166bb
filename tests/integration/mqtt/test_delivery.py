"""No metrics record is lost: broker outage, agent SIGKILL during an outage, last will.

These run the real agent (``python -m edge_agent run``, synthetic camera, shipped model).
"""

from __future__ import annotations

import collections
import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.mqtt.testing import Mosquitto, Recorder
from tests.support.helpers import run_cli
from tests.support.mqtt_agent import AgentProc, write_config

MakeBroker = Callable[..., Mosquitto]


def outbox_state(state_dir: Path) -> tuple[int, list[int]]:
    """(last metrics seq given, seqs of metrics records still waiting) from the agent's disk."""
    db = sqlite3.connect(str(state_dir / "mqtt" / "outbox.sqlite"))
    try:
        row = db.execute("SELECT value FROM seqs WHERE stream = 'metrics'").fetchone()
        pending = [json.loads(p)["seq"] for (p,) in db.execute(
            "SELECT payload FROM records WHERE stream = 'metrics' ORDER BY id")]
    finally:
        db.close()
    return (int(row[0]) if row else 0), pending


def metrics_seqs(rec: Recorder) -> list[int]:
    return [m["seq"] for m in rec.on("edge/dev1/metrics")]


def assert_complete(seqs: list[int], last: int) -> None:
    dups = sum(n - 1 for n in collections.Counter(seqs).values())
    missing = sorted(set(range(min(seqs), last + 1)) - set(seqs))
    print(f"received {len(seqs)} records, seq {min(seqs)}..{last}, {dups} duplicates")
    assert missing == [], f"missing metrics seq: {missing[:20]}"


def test_broker_down_10s_then_every_seq_arrives(tmp_path: Path,
                                                  mosquitto_factory: MakeBroker) -> None:
    broker = mosquitto_factory(persistence=True)
    state = tmp_path / "state"
    agent = AgentProc(write_config(tmp_path / "a.toml", state, broker.port, interval_s=0.2),
                      real=True)
    rec = Recorder(broker.port, ["edge/dev1/metrics"], client_id="central-store")
    try:
        assert rec.wait(lambda r: len(metrics_seqs(r)) >= 5)
        broker.stop()
        time.sleep(10)
        broker.start()
        _, pending = outbox_state(state)
        assert len(pending) >= 20  # made during the outage, waiting on disk
        # the backlog drains and the stream goes on
        assert rec.wait(lambda r: max(metrics_seqs(r)) >= pending[-1] + 5, timeout=30)
        assert agent.stop() == 0
        last, left = outbox_state(state)
        assert left == []  # a clean stop waits for the last acknowledgements
        assert rec.wait(lambda r: max(metrics_seqs(r)) >= last, timeout=10)
        assert_complete(metrics_seqs(rec), last)
    finally:
        rec.close()
        agent.kill()


def test_agent_killed_during_outage_resends_after_restart(
    tmp_path: Path, mosquitto_factory: MakeBroker
) -> None:
    broker = mosquitto_factory(persistence=True)
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "a.toml", state, broker.port, interval_s=0.2)
    agent = AgentProc(cfg, real=True)
    rec = Recorder(broker.port, ["edge/dev1/metrics"], client_id="central-store")
    try:
        assert rec.wait(lambda r: len(metrics_seqs(r)) >= 3)
        broker.stop()
        time.sleep(2)
        agent.kill()  # SIGKILL while the broker is away
        before_kill, pending = outbox_state(state)
        assert len(pending) >= 5 and pending[-1] == before_kill
        broker.start()
        agent = AgentProc(cfg, real=True)
        assert rec.wait(lambda r: before_kill in metrics_seqs(r), timeout=30)
        assert rec.wait(lambda r: max(metrics_seqs(r)) > before_kill)  # new records follow
        assert agent.stop() == 0
        last, _ = outbox_state(state)
        assert rec.wait(lambda r: max(metrics_seqs(r)) >= last, timeout=10)
        assert_complete(metrics_seqs(rec), last)
    finally:
        rec.close()
        agent.kill()


def test_last_will_marks_offline_then_online_again(tmp_path: Path, mosquitto: Mosquitto) -> None:
    keepalive = 5
    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", mosquitto.port,
                       keepalive_s=keepalive, interval_s=0.5)
    agent = AgentProc(cfg, real=True)
    rec = Recorder(mosquitto.port, ["edge/dev1/status"], client_id="watcher")

    def last_status(r: Recorder) -> dict[str, object]:
        s: list[dict[str, object]] = r.on("edge/dev1/status")
        return s[-1] if s else {}

    try:
        assert rec.wait(lambda r: last_status(r).get("online") is True)
        # frozen: the connection stays open but goes silent -> will after 1.5 x keep-alive
        # (mosquitto checks keep-alives periodically, so allow some slack)
        agent.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        assert rec.wait(lambda r: last_status(r).get("online") is False,
                        timeout=3 * keepalive + 5)
        print(f"offline after {time.monotonic() - t0:.1f} s (keep-alive {keepalive} s)")
        assert last_status(rec)["reason"] == "connection lost"
        # it wakes up, reconnects and says so
        agent.signal(signal.SIGCONT)
        assert rec.wait(lambda r: last_status(r).get("online") is True, timeout=20)
        # killed: the broker sees the socket close and publishes the will
        agent.kill()
        assert rec.wait(lambda r: last_status(r).get("online") is False, timeout=10)
        agent = AgentProc(cfg, real=True)
        assert rec.wait(lambda r: last_status(r).get("online") is True, timeout=10)
    finally:
        rec.close()
        agent.kill()


def test_command_queued_while_offline_runs_after_restart(tmp_path: Path,
                                                         mosquitto: Mosquitto) -> None:
    """The persistent session keeps the device's QoS 1 command subscription while it is away."""
    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", mosquitto.port, interval_s=0.5)
    agent = AgentProc(cfg, real=True)
    rec = Recorder(mosquitto.port, ["edge/dev1/status", "ops/replies", "edge/dev1/snapshot"],
                   client_id="ops")
    try:
        assert rec.wait(lambda r: any(s["online"] for s in r.on("edge/dev1/status")), timeout=20)
        time.sleep(1.0)  # a few frames through the pipeline
        rec.publish("edge/dev1/cmd/snapshot", b'{"id": "snap-1"}', correlation=b"s",
                    response_topic="ops/replies")
        assert rec.wait(lambda r: any(m.correlation == b"s" for m in r.messages))
        snap_reply = json.loads(next(m.payload for m in rec.messages if m.correlation == b"s"))
        assert snap_reply["ok"] is True, snap_reply
        assert rec.wait(lambda r: any(m.topic == "edge/dev1/snapshot" for m in r.messages))
        jpeg = next(m.payload for m in rec.messages if m.topic == "edge/dev1/snapshot")
        assert jpeg[:3] == b"\xff\xd8\xff"  # the pipeline's latest annotated frame
        agent.kill()
        assert rec.wait(lambda r: r.on("edge/dev1/status")[-1]["online"] is False)
        rec.publish("edge/dev1/cmd/ping", b'{"id": "while-away"}', correlation=b"p",
                    response_topic="ops/replies")
        time.sleep(0.5)
        agent = AgentProc(cfg, real=True)
        assert rec.wait(lambda r: any(m.correlation == b"p" for m in r.messages), timeout=20)
        reply = json.loads(next(m.payload for m in rec.messages if m.correlation == b"p"))
        assert reply["ok"] is True and reply["id"] == "while-away"
    finally:
        rec.close()
        agent.kill()


def test_real_agent_events_rate_limited(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The demo clip has a face: results become events, at most events_per_s of them."""
    cfg = write_config(tmp_path / "a.toml", tmp_path / "state", mosquitto.port, interval_s=1.0)
    cfg.write_text(cfg.read_text().replace('source = "synthetic"\nfps = 5', 'source = "demo"'))
    rec = Recorder(mosquitto.port, ["edge/dev1/events", "edge/dev1/metrics"], client_id="ev")
    try:
        t0 = time.monotonic()
        r = run_cli("run", "--config", str(cfg), "--duration", "3")
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert rec.wait(lambda r: len(r.on("edge/dev1/metrics")) >= 3)
        events = rec.on("edge/dev1/events")
        assert events and all(e["detections"][0]["label"] == "face" for e in events)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        # token bucket, 2/s with a burst of 2: never more than that over the agent's lifetime
        assert len(events) <= 2 + 2 * elapsed
        limited = rec.on("edge/dev1/metrics")[-1]["mqtt"]["events_rate_limited"]
        assert limited > 0
    finally:
        rec.close()
