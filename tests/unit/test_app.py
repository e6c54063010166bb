"""The composition root builds the parts in a fixed order and wires them explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.agent.runner_loader import RunnerLoader
from edge_agent.app import components
from edge_agent.config import parse_config
from edge_agent.mqtt.component import MqttComponent
from edge_agent.updates.component import UpdateComponent


class Context:
    """The narrow AgentContext a component is started with (no pipeline: nothing runs)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.config_path: Path | None = None
        self.pipeline: Any = None
        self.boot: Any = None
        self.model_info: dict[str, Any] = {}

    def request_stop(self, reason: str = "stop requested") -> None:
        raise AssertionError(reason)


def _cfg(tmp_path: Path, **extra: Any) -> Any:
    return parse_config({"device": {"id": "d1", "state_dir": str(tmp_path)},
                         "mqtt": {"enabled": True, "host": "127.0.0.1", "port": 1}, **extra})


def test_fixed_order_and_explicit_wiring(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, bridge={"enabled": True, "port": "loop://"})
    loader = RunnerLoader(cfg)
    parts = components(cfg, loader)
    assert [c.name for c in parts] == ["reload", "control", "mqtt", "updates", "bridge",
                                       "http", "sdnotify"]
    reload, control, mqtt, updates, bridge, http, _sd = parts
    assert isinstance(mqtt, MqttComponent) and isinstance(updates, UpdateComponent)
    assert mqtt.reload_hook == reload.reload_live  # type: ignore[attr-defined]
    assert updates.load_runner is loader and updates.messaging is mqtt
    assert bridge.publish == mqtt.publish  # type: ignore[attr-defined]
    assert http._commands is mqtt  # type: ignore[attr-defined]  # MQTT's commands over HTTP
    assert http.status == control.status  # type: ignore[attr-defined]
    off = components(parse_config({"device": {"state_dir": str(tmp_path)}}), loader)
    assert [c.name for c in off] == ["reload", "control", "updates", "http", "sdnotify"]
    assert off[2].messaging is None  # type: ignore[attr-defined]
    assert off[3].command_names() == ["cancel", "ping", "reload", "rollback", "update"]  # type: ignore[attr-defined]
    bare = parse_config({"device": {"state_dir": str(tmp_path)}, "http": {"enabled": False}})
    assert "http" not in [c.name for c in components(bare, loader)]


def test_every_command_is_registered_before_mqtt_connects(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    parts = {c.name: c for c in components(cfg, RunnerLoader(cfg))}
    mqtt, updates = parts["mqtt"], parts["updates"]
    assert isinstance(mqtt, MqttComponent)
    ctx = Context(cfg)
    mqtt.start(ctx)
    updates.start(ctx)
    assert mqtt.link is not None
    at_connect: list[list[str]] = []
    mqtt.link.start = lambda: at_connect.append(sorted(mqtt.command_names()))  # type: ignore
    try:
        for c in (mqtt, updates):  # what Agent.run does once every part has started
            c.on_started()
        assert at_connect == [["cancel", "ping", "reload", "rollback", "snapshot", "update"]]
    finally:
        updates.stop()
        mqtt.stop()
