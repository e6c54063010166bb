"""Fuzzed command payloads over a real broker: each gets an error reply; publishing goes on."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.mqtt.testing import Mosquitto, Recorder
from tests.support.mqtt_agent import AgentProc, write_config

MAX_CMD = 4096


def _looks_valid(payload: bytes) -> bool:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("id"), str)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=15,
)
wrong_shapes = st.one_of(
    json_values.filter(lambda v: not isinstance(v, dict)),
    st.fixed_dictionaries({"id": json_values.filter(lambda v: not isinstance(v, str))}),
    st.fixed_dictionaries({"id": st.just("ok-id"),
                           "params": json_values.filter(lambda v: not isinstance(v, dict))}),
    st.fixed_dictionaries({"id": st.just("ok-id"), "unexpected": json_values}),
    st.fixed_dictionaries({"params": st.dictionaries(st.text(max_size=5), json_values)}),
).map(lambda v: json.dumps(v).encode())
huge = st.integers(min_value=MAX_CMD + 1, max_value=MAX_CMD * 64).map(
    lambda n: json.dumps({"id": "big", "params": {"blob": "x" * n}}).encode())
random_bytes = st.binary(max_size=512).filter(lambda b: not _looks_valid(b))


def test_fuzzed_commands_get_error_replies(tmp_path: Path, mosquitto: Mosquitto) -> None:
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "a.toml", state, mosquitto.port, interval_s=0.2,
                       max_command_bytes=MAX_CMD)
    agent = AgentProc(cfg)
    rec = Recorder(mosquitto.port, ["fuzz/replies", "edge/dev1/metrics"])
    corr = itertools.count()
    seen: dict[str, int] = {}

    def send(name: str, payload: bytes) -> dict[str, Any]:
        c = str(next(corr)).encode()
        rec.publish(f"edge/dev1/cmd/{name}", payload, correlation=c, response_topic="fuzz/replies")
        assert rec.wait(lambda r: any(m.correlation == c for m in r.messages), timeout=10), (
            f"no reply to {payload[:80]!r}")
        msg = next(m for m in rec.messages if m.correlation == c)
        reply: dict[str, Any] = json.loads(msg.payload)
        return reply

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(name=st.sampled_from(["ping", "reload", "snapshot", "nope"]),
           payload=st.one_of(random_bytes, wrong_shapes, huge))
    def fuzz(name: str, payload: bytes) -> None:
        reply = send(name, payload)
        assert reply["ok"] is False, reply
        assert reply["error"]["code"] in {"invalid_payload", "too_large", "unknown_command"}
        assert reply["error"]["message"]
        seen[reply["error"]["code"]] = seen.get(reply["error"]["code"], 0) + 1

    try:
        assert rec.wait(lambda r: len(r.on("edge/dev1/metrics")) >= 1)
        fuzz()
        print("error replies by code:", seen)
        assert agent.proc.poll() is None
        # still publishing, still answering, and the fuzz changed nothing (no id remembered)
        before = max(m["seq"] for m in rec.on("edge/dev1/metrics"))
        assert rec.wait(lambda r: max(m["seq"] for m in r.on("edge/dev1/metrics")) > before + 2)
        assert send("ping", b'{"id": "after-fuzz"}')["ok"] is True
        db = sqlite3.connect(str(state / "mqtt" / "outbox.sqlite"))
        assert [r[0] for r in db.execute("SELECT id FROM replies")] == ["after-fuzz"]
        db.close()
    finally:
        rec.close()
        agent.kill()
