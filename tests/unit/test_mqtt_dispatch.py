"""Command dispatch without a broker: validation, idempotency across restarts, refusals."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.mqtt import commands as cmds
from edge_agent.mqtt.dispatch import CommandDispatcher
from edge_agent.mqtt.errors import CommandError
from edge_agent.mqtt.events import TokenBucket
from edge_agent.mqtt.link import Incoming
from edge_agent.mqtt.outbox import Outbox
from edge_agent.mqtt.topics import Topics


class Device:
    """A dispatcher on an outbox file, with a counting handler and captured replies."""

    def __init__(self, path: Path, max_bytes: int = 512) -> None:
        self.calls: list[dict[str, Any]] = []
        self.replies: list[tuple[str, dict[str, Any]]] = []
        self.now = 1000.0  # the dispatcher's monotonic clock, moved by the test
        reg = cmds.Registry()
        reg.add("count", self.count)
        reg.add("fail", self.fail)
        reg.add("snap", self.count)
        self.outbox = Outbox(path)
        self.d = CommandDispatcher(
            reg, device="dev1", topics=Topics("edge/dev1", groups=("lab",)), store=self.outbox,
            reply=lambda msg, name, body: self.replies.append((name, body)),
            max_bytes=lambda: max_bytes, queue_size=2,
            limits={"snap": TokenBucket(0.5, 2)}, clock=lambda: self.now)

    def count(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(params)
        return {"n": len(self.calls)}

    def fail(self, params: dict[str, Any]) -> dict[str, Any]:
        raise CommandError("busy", "an update is running")

    def send(self, topic: str, payload: bytes | dict[str, Any]) -> dict[str, Any]:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.d.run(Incoming(topic, raw))
        return self.replies[-1][1]


def test_repeat_is_answered_from_disk_after_restart(tmp_path: Path) -> None:
    dev = Device(tmp_path / "o.sqlite")
    first = dev.send("edge/dev1/cmd/count", {"id": "a", "params": {"x": 1}})
    assert first["ok"] and first["result"] == {"n": 1} and "repeat" not in first
    assert dev.send("edge/group/lab/cmd/count", {"id": "a"})["repeat"] is True
    failed = dev.send("edge/dev1/cmd/fail", {"id": "f"})
    assert failed["error"] == {"code": "busy", "message": "an update is running"}
    dev.outbox.close()

    again = Device(tmp_path / "o.sqlite")  # the agent restarted
    rep = again.send("edge/dev1/cmd/count", {"id": "a"})
    assert rep["repeat"] is True and rep["result"] == {"n": 1}
    assert again.send("edge/dev1/cmd/fail", {"id": "f"})["error"]["code"] == "busy"
    assert again.calls == []  # nothing ran twice
    assert again.send("edge/dev1/cmd/count", {"id": "b"})["result"] == {"n": 1}


def test_refusals_change_nothing(tmp_path: Path) -> None:
    dev = Device(tmp_path / "o.sqlite")
    for payload, code in [(b"\x00\x01", "invalid_payload"), (b"[]", "invalid_payload"),
                          (b'{"id": "z", "params": 1}', "invalid_payload"),
                          (b"x" * 600, "too_large")]:
        reply = dev.send("edge/dev1/cmd/count", payload)
        assert reply["ok"] is False and reply["error"]["code"] == code
    unknown = dev.send("edge/dev1/cmd/nope", {"id": "u"})
    assert unknown["error"]["code"] == "unknown_command" and unknown["id"] == "u"
    assert dev.calls == [] and dev.outbox.load_replies() == []
    # the id of a refused command is still free
    assert dev.send("edge/dev1/cmd/count", {"id": "u"})["ok"] is True


def test_network_thread_side(tmp_path: Path) -> None:
    dev = Device(tmp_path / "o.sqlite")
    dev.d.on_message(Incoming("edge/dev1/cmd/count", b"y" * 1000))
    assert dev.replies[-1][1]["error"]["code"] == "too_large"  # answered at once
    for i in range(2):
        dev.d.on_message(Incoming("edge/dev1/cmd/count", json.dumps({"id": str(i)}).encode()))
    dev.d.on_message(Incoming("edge/dev1/cmd/count", b'{"id": "third"}'))
    busy = dev.replies[-1][1]
    assert busy["error"]["code"] == "busy" and busy["id"] == "third"
    dev.d.on_message(Incoming("edge/dev2/cmd/count", b'{"id": "other"}'))  # not ours: ignored
    assert len(dev.replies) == 2 and dev.calls == []


def test_a_name_not_registered_is_refused_at_once(tmp_path: Path) -> None:
    """No waiting for late registrations: the app registers every command before MQTT
    connects (tests/unit/test_app.py), so an unknown name is unknown."""
    dev = Device(tmp_path / "o.sqlite")
    assert dev.send("edge/dev1/cmd/never", {"id": "n1"})["error"]["code"] == "unknown_command"
    dev.d.registry.add("late", lambda p: {"here": True})
    assert dev.send("edge/dev1/cmd/late", {"id": "l1"})["result"] == {"here": True}


def test_expensive_command_is_rate_limited(tmp_path: Path) -> None:
    dev = Device(tmp_path / "o.sqlite")
    codes = [dev.send("edge/dev1/cmd/snap", {"id": f"s{i}"}).get("error", {}).get("code")
             for i in range(3)]
    assert codes == [None, None, "rate_limited"]  # a burst of 2, then refused
    limited = dev.replies[-1][1]
    assert limited["id"] == "s2"
    assert limited["error"]["message"] == (
        "snap is limited to 0.5 per second (bursts of 2); retry in 2.0 s")
    assert dev.send("edge/dev1/cmd/count", {"id": "c"})["ok"]  # other commands are not limited
    dev.now += 2.0
    assert dev.send("edge/dev1/cmd/snap", {"id": "s2"})["ok"]  # refused: not remembered
    assert dev.send("edge/dev1/cmd/snap", {"id": "s0"})["repeat"] is True  # repeats are free
    assert len(dev.calls) == 4 and dev.d.counters["commands_rate_limited"] == 1


def test_expired_command_is_not_run_and_counted(tmp_path: Path) -> None:
    dev = Device(tmp_path / "o.sqlite")
    reply = dev.send("edge/dev1/cmd/count", {"id": "late", "expires_at": 1000.0})
    assert reply["error"]["code"] == "expired" and reply["id"] == "late"
    assert dev.calls == [] and dev.d.counters["commands_expired"] == 1


def test_a_flood_of_refusals_is_one_log_line_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dev = Device(tmp_path / "o.sqlite", max_bytes=64 * 1024)
    caplog.set_level(logging.WARNING, "edge_agent.mqtt")
    for _ in range(200):
        assert dev.send("edge/dev1/cmd/count", b"[" * 60_000)["error"]["code"] == "invalid_payload"
    dev.now += 61
    dev.send("edge/dev1/cmd/count", b"[" * 60_000)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "nested deeper than 32 levels" in lines[0]
    assert lines[1].endswith("(199 more like this in the last 61 s)")
    assert dev.d.counters["commands_invalid"] == 201


def _deep(n: int) -> bytes:
    return b'{"id": "d", "params": {"x": ' + b"[" * n + b"]" * n + b"}}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=20,
)
hostile = st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda v: json.dumps(v).encode()),  # NaN and Infinity included
    st.fixed_dictionaries({"id": st.just("a"), "params": json_values},
                          optional={"expires_at": json_values}).map(
        lambda v: json.dumps(v).encode()),
    st.integers(min_value=0, max_value=70_000).map(_deep),
    st.integers(min_value=1, max_value=6000).map(
        lambda n: b'{"id": "n", "params": {"v": ' + b"9" * n + b"}}"),
    st.sampled_from([b'{"id": "a", "id": "b"}', b'{"id": "a", "params": {"k": 1, "k": 2}}',
                     b'{"id": "a", "expires_at": 1e999}', b'{"id": "a", "expires_at": NaN}',
                     b"\xff\xfe{}", b'{"id": "\xed\xa0\x80"}', b'{"id": "\\ud800"}']),
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads=st.lists(hostile, min_size=1, max_size=4),
       name=st.sampled_from(["count", "fail", "snap", "nope"]))
def test_fuzz_every_payload_gets_exactly_one_reply(tmp_path_factory: pytest.TempPathFactory,
                                                   payloads: list[bytes], name: str) -> None:
    """Arbitrary JSON and bytes through both threads' entry points: a reply each, no raise."""
    dev = Device(tmp_path_factory.mktemp("fuzz") / "o.sqlite", max_bytes=64 * 1024)
    for payload in payloads:
        before = len(dev.replies)
        dev.d.on_message(Incoming(f"edge/dev1/cmd/{name}", payload))  # network thread
        queued = len(dev.replies) == before
        if queued:
            dev.d.run(dev.d._queue.get_nowait())  # worker thread
        assert len(dev.replies) == before + 1
        reply = dev.replies[-1][1]
        json.dumps(reply, allow_nan=False)  # a reply is always valid, finite JSON
        assert reply["command"] == name and isinstance(reply["ok"], bool)
        if not reply["ok"]:
            assert reply["error"]["code"] in {"invalid_payload", "too_large", "expired",
                                              "unknown_command", "invalid_params", "busy",
                                              "rate_limited"}
            assert reply["error"]["message"] and "\n" not in reply["error"]["message"]
    assert dev.d.counters["commands_errors"] == 0
    dev.outbox.close()


def test_the_worker_blocks_on_its_queue_and_stop_wakes_it(tmp_path: Path) -> None:
    """No timeout polling: stop's wake-up ends the worker; a wake-up left in the queue by a
    stop the worker did not need is skipped after a restart, and commands still run."""
    dev = Device(tmp_path / "o.sqlite")
    ran = threading.Event()
    dev.d.reply = lambda msg, name, body: (dev.replies.append((name, body)), ran.set())
    dev.d.start()
    worker = dev.d._thread
    assert worker is not None
    dev.d.stop(timeout=30)
    assert not worker.is_alive()
    dev.d._queue.put_nowait(None)  # as if a stop's wake-up had not been taken
    dev.d.start()
    try:
        dev.d.on_message(Incoming("edge/dev1/cmd/count", json.dumps({"id": "r1"}).encode()))
        assert ran.wait(30)
        assert dev.replies[-1][1]["ok"] and len(dev.calls) == 1
    finally:
        dev.d.stop(timeout=30)
