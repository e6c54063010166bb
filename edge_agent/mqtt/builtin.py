"""The built-in commands: ``ping``, ``snapshot``, ``reload`` (``update``/``rollback``: #5)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from .. import __version__
from ..common.changes import changed_keys
from ..config import Config, load_config
from ..errors import EdgeAgentError
from .commands import Handler, NoParams
from .errors import CommandError
from .events import TokenBucket
from .topics import STREAMS, Topics

if TYPE_CHECKING:
    from .link import Link
    from .outbox import Outbox


class Host(Protocol):
    """What the built-in commands use of the MQTT component (which implements it)."""

    agent: Any
    config: Config | None
    link: Link | None
    outbox: Outbox | None
    topics: Topics | None
    bucket: TokenBucket
    started_at: float
    reload_hook: Callable[[], Iterable[str]] | None

    def add_command(
        self, name: str, handler: Handler, params_model: type[Any] | None = None
    ) -> None: ...

    def command_names(self) -> list[str]: ...

MQTT_LIVE = ("events_per_s", "max_event_bytes", "max_command_bytes")
"""``[mqtt]`` keys ``reload`` applies without a restart."""


class BuiltinCommands:
    def __init__(self, comp: Host) -> None:
        self.comp = comp

    def register(self) -> None:
        self.comp.add_command("ping", self.ping, NoParams)
        self.comp.add_command("snapshot", self.snapshot, NoParams)
        self.comp.add_command("reload", self.reload, NoParams)

    def ping(self, params: dict[str, Any]) -> dict[str, Any]:
        c = self.comp
        assert c.outbox is not None
        return {
            "pong": True,
            "agent_version": __version__,
            "uptime_s": round(time.time() - c.started_at, 1),
            "seq": {s: c.outbox.seq(s) for s in STREAMS},
            "commands": c.command_names(),
        }

    def snapshot(self, params: dict[str, Any]) -> dict[str, Any]:
        """Publish the pipeline's latest annotated frame (JPEG) on ``<prefix>/snapshot``."""
        c = self.comp
        assert c.link is not None and c.topics is not None
        latest = getattr(getattr(c.agent, "pipeline", None), "latest_snapshot", None)
        if latest is None:
            raise CommandError(
                "unavailable", "no snapshot ring: the pipeline is not running on this agent"
            )
        jpeg = latest()
        if not jpeg:
            raise CommandError(
                "unavailable", "no annotated frame yet (or pipeline.snapshot_ring = 0)"
            )
        if not isinstance(jpeg, (bytes, bytearray)):
            raise CommandError("failed", "the pipeline's snapshot is not JPEG bytes")
        c.link.publish(c.topics.snapshot, bytes(jpeg), qos=1)
        return {"topic": c.topics.snapshot, "bytes": len(jpeg), "content_type": "image/jpeg"}

    def reload(self, params: dict[str, Any]) -> dict[str, Any]:
        """Re-read the config file; apply what can change live, name what needs a restart."""
        c = self.comp
        agent = c.agent
        assert c.config is not None
        path = getattr(agent.config, "source", None) or getattr(agent, "config_path", None)
        if path is None:
            raise CommandError(
                "unavailable", "the agent was started without a config file: nothing to re-read"
            )
        try:
            new = load_config(path)
        except EdgeAgentError as exc:
            raise CommandError(
                "invalid_config", f"{exc}; still running on the old config"
            ) from None
        changed = changed_keys(agent.config, new)
        # the ops reload (wired in by the app) applies [logging]; we apply the MQTT settings
        applied = list(c.reload_hook()) if c.reload_hook is not None else []
        live = [k for k in changed if k.removeprefix("mqtt.") in MQTT_LIVE]
        for key in live:
            attr = key.removeprefix("mqtt.")
            setattr(c.config.mqtt, attr, getattr(new.mqtt, attr))
        c.bucket = TokenBucket(c.config.mqtt.events_per_s)
        done = set(applied + live)
        return {
            "reloaded": str(path),
            "applied": sorted(done),
            "restart_required": [k for k in changed if k not in done],
        }
