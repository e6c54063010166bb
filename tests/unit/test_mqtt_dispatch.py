"""Command dispatch without a broker: validation, idempotency across restarts, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_agent.mqtt import commands as cmds
from edge_agent.mqtt.dispatch import CommandDispatcher
from edge_agent.mqtt.errors import CommandError
from edge_agent.mqtt.link import Incoming
from edge_agent.mqtt.outbox import Outbox
from edge_agent.mqtt.topics import Topics


class Device:
    """A dispatcher on an outbox file, with a counting handler and captured replies."""

    def __init__(self, path: Path) -> None:
        self.calls: list[dict[str, Any]] = []
        self.replies: list[tuple[str, dict[str, Any]]] = []
        reg = cmds.Registry()
        reg.add("count", self.count)
        reg.add("fail", self.fail)
        self.outbox = Outbox(path)
        self.d = CommandDispatcher(
            reg, device="dev1", topics=Topics("edge/dev1", groups=("lab",)), store=self.outbox,
            reply=lambda msg, name, body: self.replies.append((name, body)),
            max_bytes=lambda: 512, queue_size=2)

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
    dev.d.ready.set()
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


def test_command_for_a_component_still_starting_waits_for_it(tmp_path: Path) -> None:
    import threading

    dev = Device(tmp_path / "o.sqlite")
    t = threading.Thread(target=dev.send, args=("edge/dev1/cmd/late", {"id": "l1"}))
    t.start()
    t.join(0.3)
    assert t.is_alive() and dev.replies == []  # waiting: "late" is not registered yet
    dev.d.registry.add("late", lambda p: {"here": True})
    dev.d.ready.set()  # the agent's first heartbeat: all components started
    t.join(5)
    assert dev.replies[-1][1]["result"] == {"here": True}
    # once ready, an unknown name is refused at once
    assert dev.send("edge/dev1/cmd/never", {"id": "n1"})["error"]["code"] == "unknown_command"
