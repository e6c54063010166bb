"""Control socket protocol on a real unix socket (the agent end-to-end is in integration)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_agent.config import parse_config
from edge_agent.errors import AgentNotRunning, ControlError
from edge_agent.ops.control import ControlServer, read_persisted, request


class _Pipeline:
    def counters(self) -> dict[str, int]:
        return {"processed": 5}


def _agent(tmp_path: Path) -> SimpleNamespace:
    cfg = parse_config({"device": {"id": "t1", "state_dir": str(tmp_path / "state")}})
    return SimpleNamespace(config=cfg, pipeline=_Pipeline(), mqtt=None)


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = ControlServer(persist_every_s=0)
    srv.start(_agent(tmp_path))
    yield srv
    srv.stop()


def test_status_ping_logs_unknown(server: ControlServer) -> None:
    assert server.path is not None
    server.on_tick({"fps": {"processed": 9.5}, "latency_ms": {"invoke": {"p95": 2.0}}})
    st = request(server.path, "status")
    assert st["state"] == "running" and st["device_id"] == "t1"
    assert st["fps"] == {"processed": 9.5} and st["latency_p95_ms"] == {"invoke": 2.0}
    assert request(server.path, "ping") == {"ok": True}
    assert isinstance(request(server.path, "logs", lines=5)["lines"], list)
    with pytest.raises(ControlError, match="unknown command"):
        request(server.path, "reboot")


def test_garbage_and_oversized_requests_are_answered(server: ControlServer) -> None:
    assert server.path is not None
    for payload in (b"not json\n", b"x" * 5000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(server.path))
        s.sendall(payload)
        reply = json.loads(s.makefile().readline())
        s.close()
        assert "error" in reply
    assert request(server.path, "ping") == {"ok": True}  # still serving


def test_persisted_on_tick_and_stop(tmp_path: Path) -> None:
    srv = ControlServer(persist_every_s=0)
    agent = _agent(tmp_path)
    srv.start(agent)
    srv.on_tick({"fps": {"processed": 3.0}})
    state_dir = agent.config.device.state_dir
    assert read_persisted(state_dir)["fps"] == {"processed": 3.0}  # type: ignore[index]
    srv.stop()
    last = read_persisted(state_dir)
    assert last is not None and last["state"] == "stopped"
    assert not agent.config.control_socket.exists()
    with pytest.raises(AgentNotRunning):
        request(agent.config.control_socket, "status")


def test_stale_socket_taken_over_live_one_refused(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    path = agent.config.control_socket
    path.parent.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # a socket file nobody listens on: a crashed agent's
    first = ControlServer()
    first.start(agent)
    try:
        with pytest.raises(ControlError, match="another agent is running"):
            ControlServer().start(_agent(tmp_path))
    finally:
        first.stop()


def test_unreadable_status_file(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text("{half")
    with pytest.raises(ControlError, match="unreadable"):
        read_persisted(tmp_path)
    assert read_persisted(tmp_path / "none") is None
