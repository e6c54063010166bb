"""The composition root: builds the agent's parts from Config, in a fixed order, and wires them.

Nothing else constructs the parts of ``edge-agent run`` or tells them about each other: the
one :class:`~edge_agent.agent.runner_loader.RunnerLoader` loads the boot model and is handed to
updates (swap, rollback); MQTT is given the reload function for its ``reload`` command; updates
and the bridge are given MQTT's publish / add_command (or nothing when MQTT is off).

Start order (stop is the reverse): SIGHUP reload and the control socket (ops) first; MQTT when
``mqtt.enabled`` (opens its outbox at start, connects in ``on_started`` once every part has
started, so every command is registered before one can arrive); updates (resumes or rolls back
a trial even without a broker); the firmware bridge when ``bridge.enabled``; the frame-rate
governor when ``thermal.enabled`` (given the bridge's status for its readings); the HTTP API
when ``http.enabled`` (MQTT's commands when MQTT is on, else reload and the updates' own);
sd_notify last
(READY once all started; STOPPING first at shutdown, the control socket's final status last).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from .agent.lifecycle import Agent
from .agent.runner_loader import RunnerLoader
from .component import Component
from .config import Config
from .ops.control import ControlServer
from .ops.reload import ReloadComponent
from .ops.sdnotify import SdNotifyComponent
from .updates.component import UpdateComponent

log = logging.getLogger("edge_agent.app")


def components(config: Config, loader: RunnerLoader) -> list[Component]:
    """The parts ``edge-agent run`` adds to the Agent, in start order, wired to each other."""
    reload = ReloadComponent()
    control = ControlServer()
    out: list[Component] = [reload, control]
    mqtt = None
    if config.mqtt.enabled:
        from .mqtt.component import MqttComponent  # paho only when MQTT is on

        mqtt = MqttComponent(config, reload=reload.reload_live)
        out.append(mqtt)
    updates = UpdateComponent(config, load_runner=loader, messaging=mqtt)
    out.append(updates)
    bridge = None
    if config.bridge.enabled:
        from .bridge.component import BridgeComponent  # pyserial only when the bridge is on

        bridge = BridgeComponent(config, publish=mqtt.publish if mqtt is not None else None)
        out.append(bridge)
    if config.thermal.enabled:
        from .ops.thermal import ThermalComponent

        out.append(ThermalComponent(
            config.thermal, bridge=bridge.status if bridge is not None else None,
            publish=mqtt.publish if mqtt is not None else None,
        ))
    if config.http.enabled and _http_installed():
        from .api.component import HttpComponent, add_local_commands  # FastAPI when HTTP is on

        http = HttpComponent(config, status=control.status)
        if mqtt is not None:
            http.use_commands(mqtt)  # the same commands, handlers and checks as MQTT's
        else:
            add_local_commands(http, reload, updates)
        out.append(http)
    out.append(SdNotifyComponent())
    return out


def _http_installed() -> bool:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client")
               if importlib.util.find_spec(m) is None]
    if missing:
        log.error("http.enabled, but %s not installed: the agent runs without its HTTP API "
                  "(pip install fastapi uvicorn prometheus-client, or set http.enabled = false)",
                  " and ".join(missing) + (" is" if len(missing) == 1 else " are"))
    return not missing


def build_agent(
    config: Config,
    *,
    config_path: Path | None = None,
    frames: int | None = None,
    first: Iterable[Component] = (),
) -> Agent:
    """The Agent with its pipeline built (boot model loaded, camera checked) and every part
    added: ``first`` (e.g. the console reporter) before the standard components."""
    loader = RunnerLoader(config)
    agent = Agent(config, config_path=config_path, loader=loader)
    agent.build(frames=frames)
    for component in (*first, *components(config, loader)):
        agent.add_component(component)
    return agent
