"""The Component base class every part of the agent plugs in with, and the narrow context and
messaging interfaces a component is given. Imports no subsystem.

The Agent (:mod:`edge_agent.agent.lifecycle`) starts, ticks and stops components; MQTT,
updates, the bridge and the operations parts subclass :class:`Component`, so they depend on
this small module and not on the Agent that runs them. The composition root
(:mod:`edge_agent.app`) builds them and hands each what it needs from the others.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class AgentContext(Protocol):
    """What a component may use of the running agent (given to :meth:`Component.start`)."""

    config: Any  # edge_agent.config.Config
    config_path: Path | None
    pipeline: Any  # edge_agent.agent.pipeline.Pipeline, once built
    boot: Any  # edge_agent.updates.boot.BootModel: which model the agent booted and why
    model_info: dict[str, Any]  # shown in metrics/status; updates change it after a swap

    def request_stop(self, reason: str = "stop requested") -> None: ...


Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Messaging(Protocol):
    """The MQTT side other components are wired to (by the composition root, never found)."""

    def publish(self, stream: str, payload: dict[str, Any], retain: bool = False) -> int: ...

    def add_command(
        self, name: str, handler: Handler, params_model: type[Any] | None = None
    ) -> None: ...


class Component:
    """Something the Agent starts, ticks and stops. Subclass and override what you need.

    ``start`` is called after the pipeline is built, in list order; once every component has
    started, ``on_started`` in the same order (connect to the outside there: MQTT connects its
    link then, so every command is registered before one can arrive); ``stop`` in reverse
    order, within the shutdown time limit. Once per metrics interval, on the Agent's heartbeat,
    the Agent builds the metrics snapshot (a dict, schema in docs/metrics.md), calls every
    component's ``contribute`` (add your own keys, e.g. ``snapshot["bridge"]``), then every
    component's ``on_tick``. ``on_result`` is called from the inference worker for every
    result and must not block.
    """

    name: str = "component"

    def start(self, agent: AgentContext) -> None:
        """Start threads, open files; ``agent`` gives the config, the pipeline, the model."""

    def on_started(self) -> None:
        """Every component has started: open connections that deliver work from outside."""

    def contribute(self, snapshot: dict[str, Any]) -> None:
        """Add this component's fields to the metrics snapshot."""

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        """Periodic work with the finished snapshot (publish it, kick a watchdog...)."""

    def on_result(self, result: Any) -> None:
        """Called for each inference result from the worker thread; must not block.

        ``result`` is a :class:`edge_agent.agent.pipeline.FrameResult` (``.result`` the
        inference Result, ``.timings``, ``.ok`` / ``.error`` for a frame whose stage failed).
        """

    def stop(self) -> None:
        """Stop and release everything; must return within a couple of seconds."""
