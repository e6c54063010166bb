"""The Component base class every part of the agent plugs in with; imports no subsystem.

The Agent (:mod:`edge_agent.agent.lifecycle`) starts, ticks and stops components; MQTT, updates, the
bridge and the operations parts subclass :class:`Component`, so they depend on this small module
and not on the Agent that runs them.
"""

from __future__ import annotations

from typing import Any


class Component:
    """Something the Agent starts, ticks and stops. Subclass and override what you need.

    ``start`` is called after the pipeline is built, in list order; ``stop`` in reverse order,
    within the shutdown time limit. Once per metrics interval, on the Agent's heartbeat, the
    Agent builds the metrics snapshot (a dict, schema in docs/metrics.md), calls every
    component's ``contribute`` (add your own keys, e.g. ``snapshot["bridge"]``), then every
    component's ``on_tick``. ``on_result`` is called from the inference worker for every
    result and must not block.
    """

    name: str = "component"

    def start(self, agent: Any) -> None:
        """Start threads/connections; ``agent`` gives access to config, pipeline, others."""

    def contribute(self, snapshot: dict[str, Any]) -> None:
        """Add this component's fields to the metrics snapshot."""

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        """Periodic work with the finished snapshot (publish it, kick a watchdog...)."""

    def on_result(self, result: Any) -> None:
        """Called for each inference result from the worker thread; must not block.

        ``result`` is a :class:`edge_agent.agent.pipeline.FrameResult` (``.result`` the inference
        Result, ``.timings``, ``.ok`` / ``.error`` for a frame whose stage failed).
        """

    def stop(self) -> None:
        """Stop and release everything; must return within a couple of seconds."""
