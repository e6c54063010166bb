"""Damaged state on disk, with real processes: ``python -m edge_agent run`` booting on a damaged
``models/state.json`` (real mosquitto, a file:// registry of real signed releases), ``edge-agent
status`` on a damaged ``status.json``, and an agent whose outbox reply table has bad rows."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from edge_agent.mqtt.outbox import Outbox
from edge_agent.mqtt.testing import Mosquitto, Recorder
from edge_agent.updates import rollout as R
from edge_agent.updates.publish import publish
from edge_agent.updates.store import Store
from tests.integration.test_update_agent import Agent, World
from tests.support.helpers import MODELS, run_cli
from tests.support.updates import Nginx, new_key, seed_store

DIGITS = MODELS / "digits_int8.tflite"
SHAPE = [1, 8, 8, 1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """digits 1.0 (seq 1) and 2.0 (seq 2) committed on the device (2.0 active, 1.0 previous);
    1.5 is published later with seq 1: installing it would be a downgrade."""
    base = tmp_path_factory.mktemp("store-damage")
    key, pub = new_key(base)
    reg = base / "registry"
    for version, seq in (("1.0", 1), ("2.0", 2), ("1.5", 1)):
        publish(DIGITS, name="digits", version=version, key=key, to=reg, seq=seq)
    template = base / "template"
    for version in ("1.0", "2.0"):
        seed_store(template, reg.as_uri(), pub, "digits", version, SHAPE)
    broker = Mosquitto(base / "broker").start()
    try:
        server = Nginx(reg, reg.as_uri(), None, base / "no-access-log")
        yield World(base, key, pub, reg, server, broker, {"digits": template})
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("state", "prev", "source"),
    [
        (b"[]", None, "state.json.prev"),
        (b"\x00\xff not json", None, "state.json.prev"),
        (b'{"highest_seq": []}', b"null", "versions/"),
        (b"", b"{half", "versions/"),
    ],
    ids=["list-prev", "garbage-prev", "shape-versions", "empty-versions"],
)
def test_agent_boots_on_damaged_state_keeps_the_verified_model_and_refuses_a_downgrade(
    world: World, tmp_path: Path, state: bytes, prev: bytes | None, source: str
) -> None:
    with closing(Agent(world, tmp_path, "digits")) as a:
        damaged_boot(a, state, prev, source)


def damaged_boot(a: Agent, state: bytes, prev: bytes | None, source: str) -> None:
    models = a.state / "models"
    (models / "state.json").write_bytes(state)
    if prev is not None:
        (models / "state.json.prev").write_bytes(prev)
    a.start()
    st = a.wait_online()
    m = st["models"]
    assert m["active"] == "digits 2.0" and m["running"]["version"] == "2.0", (m, a.tail())
    assert m["store"]["state"] == "recovered" and m["store"]["source"] == source, m
    assert "state.json" in m["store"]["problem"]
    # the highest seq survived the damage: 1.5 (seq 1 < 2) is refused as a downgrade
    a.command("update", {"model": "digits", "version": "1.5", "deployment": "dep-down"})
    final = a.wait_final("dep-down")
    assert final["state"] == R.REJECTED and final["reason"] == "downgrade", final
    assert a.running_model_verifies()["version"] == "2.0"
    status = run_cli("status", "-c", str(a.config))
    assert status.returncode == 0, status.stderr
    assert f"model store: recovered from {source}" in status.stdout
    doctor = run_cli("doctor", "--json", "-c", str(a.config))
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["store"]["status"] == "WARN" and f"from {source}" in checks["store"]["detail"]
    a.stop()
    s = Store(a.state).load()
    assert s.highest_seq == {"digits": 2} and s.recovered is not None
    assert list(models.glob("state.json.damaged-*"))  # the damaged file kept for a look
    assert "Traceback" not in a.tail()


STATUS_DAMAGE = {
    "list": b"[]",
    "null": b"null",
    "string": b'"running"',
    "garbage": b"\xff\xfe\x00 not json",
    "truncated": b'{"state": "running", "model": {"na',
}


@pytest.mark.parametrize("case", list(STATUS_DAMAGE))
def test_status_on_a_damaged_status_json_says_so_in_one_line(tmp_path: Path, case: str) -> None:
    (tmp_path / "status.json").write_bytes(STATUS_DAMAGE[case])
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path}"\n')
    r = run_cli("status", "-c", str(cfg))
    assert r.returncode == 30, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    first = r.stderr.splitlines()[0]
    assert "last status unknown" in first and "status.json" in first


def test_status_json_with_fields_of_the_wrong_type_still_renders(tmp_path: Path) -> None:
    record = {"state": "stopped", "updated": "yesterday", "model": "digits", "fps": [1, 2],
              "camera": 5, "broker": None, "update": "x", "model_store": [],
              "latency_p95_ms": "fast"}
    (tmp_path / "status.json").write_text(json.dumps(record))
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path}"\n')
    r = run_cli("status", "-c", str(cfg))
    assert r.returncode == 30 and "Traceback" not in r.stderr, r.stderr
    assert "last state 'stopped' at ?" in r.stdout and "model: - " in r.stdout, r.stdout
    assert "None" not in r.stdout, r.stdout


def test_agent_starts_over_damaged_rows_in_the_outbox_reply_table(
    world: World, tmp_path: Path
) -> None:
    with closing(Agent(world, tmp_path, "digits")) as a:
        damaged_replies(a)


def damaged_replies(a: Agent) -> None:
    path = a.state / "mqtt" / "outbox.sqlite"
    ob = Outbox(path)
    good = {"id": "kept-1", "command": "ping", "device": a.device, "ok": True,
            "result": {"pong": True}}
    ob.save_reply("kept-1", time.time(), good, [])
    ob.close()
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO replies (id, ts, reply) VALUES (?, ?, ?)", [
        ("not-json", time.time(), "{half"),
        ("a-list", time.time(), "[]"),
        ("bad-time", "yesterday", "{}"),
        ("inf-time", float("inf"), "{}"),
        (None, time.time(), "{}"),  # a TEXT PRIMARY KEY may be NULL in SQLite
        ("blob", time.time(), b"\x00\xff"),
    ])
    db.commit()
    db.close()
    a.start()
    a.wait_online()
    cid = "kept-1"

    def replied(r: Recorder, cid: str = cid) -> bool:
        return any(x.get("id") == cid for x in r.on(f"{a.prefix}/cmd/ping/reply"))

    for _ in range(10):
        a.rec.publish(f"{a.prefix}/cmd/ping", json.dumps({"id": cid}).encode(), qos=1)
        if a.rec.wait(replied, 1.5):
            break
    reply = [x for x in a.rec.on(f"{a.prefix}/cmd/ping/reply") if x.get("id") == cid][-1]
    assert reply.get("repeat") is True and reply["result"] == {"pong": True}  # the good row
    fresh = a.command("ping", {})
    assert fresh
    log = a.tail()
    assert str(path) in log and "6 damaged row(s) in the command reply table" in log, log
    assert "Traceback" not in log
    assert a.rec.wait(lambda r: any((m.get("mqtt") or {}).get("replies_damaged") == 6
                                    for m in r.on(f"{a.prefix}/metrics")), 10)
    a.stop()
    rows = sqlite3.connect(path).execute("SELECT id FROM replies").fetchall()
    assert {r[0] for r in rows} >= {"kept-1"} and "not-json" not in {r[0] for r in rows}
