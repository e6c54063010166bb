"""The composition root: builds the agent's parts from Config, in a fixed order, and wires them.

Nothing else constructs the parts of ``edge-agent run`` or tells them about each other: the
one :class:`~edge_agent.agent.runner_loader.RunnerLoader` loads the boot model and is handed to
updates (swap, rollback); MQTT is given the reload function for its ``reload`` command; updates
and the bridge are given MQTT's publish / add_command (or nothing when MQTT is off).

Start order (stop is the reverse): SIGHUP reload and the control socket (ops) first; MQTT when
``mqtt.enabled`` (opens its outbox at start, connects in ``on_started`` once every part has
started, so every command is registered before one can arrive); updates (resumes or rolls back
a trial even without a broker); the firmware bridge when ``bridge.enabled``; sd_notify last
(READY once all started; STOPPING first at shutdown, the control socket's final status last).
"""

from __future__ import annotations

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


def components(config: Config, loader: RunnerLoader) -> list[Component]:
    """The parts ``edge-agent run`` adds to the Agent, in start order, wired to each other."""
    reload = ReloadComponent()
    out: list[Component] = [reload, ControlServer()]
    mqtt = None
    if config.mqtt.enabled:
        from .mqtt.component import MqttComponent  # paho only when MQTT is on

        mqtt = MqttComponent(config, reload=reload.reload_live)
        out.append(mqtt)
    out.append(UpdateComponent(config, load_runner=loader, messaging=mqtt))
    if config.bridge.enabled:
        from .bridge.component import BridgeComponent  # pyserial only when the bridge is on

        out.append(BridgeComponent(config, publish=mqtt.publish if mqtt is not None else None))
    out.append(SdNotifyComponent())
    return out


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
