"""Topic names of the MQTT contract (docs/mqtt.md). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

STREAMS = ("status", "metrics", "events", "update")
"""Streams a device publishes; each record carries a per-stream ``seq``."""


def _check_level(value: str, what: str) -> str:
    if not value or any(c in value for c in "+#/\0"):
        raise ValueError(f"{what} {value!r} must be one non-empty topic level without + # /")
    return value


@dataclass(frozen=True)
class Topics:
    """Every topic one device uses, built from its prefix (default ``edge/<device_id>``)."""

    prefix: str
    group_prefix: str = "edge/group"
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for p in (self.prefix, self.group_prefix):
            if not p or p.startswith("/") or p.endswith("/") or "+" in p or "#" in p:
                raise ValueError(f"topic prefix {p!r} must be a plain topic without + # or edge /")
        for g in self.groups:
            _check_level(g, "group name")

    def stream(self, name: str) -> str:
        if name not in STREAMS:
            raise ValueError(f"unknown stream {name!r}; expected one of {', '.join(STREAMS)}")
        return f"{self.prefix}/{name}"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def snapshot(self) -> str:
        return f"{self.prefix}/snapshot"

    def cmd(self, name: str) -> str:
        return f"{self.prefix}/cmd/{_check_level(name, 'command name')}"

    def reply(self, name: str) -> str:
        """Reply topic for clients without an MQTT 5 response topic (3.1.1)."""
        return f"{self.prefix}/cmd/{name}/reply"

    def group_cmd(self, group: str, name: str) -> str:
        return group_cmd_topic(self.group_prefix, group, name)

    def command_filters(self) -> list[str]:
        """Subscriptions of the device: its own commands and its groups' commands."""
        return [f"{self.prefix}/cmd/+"] + [f"{self.group_prefix}/{g}/cmd/+" for g in self.groups]

    def command_name(self, topic: str) -> str | None:
        """The command name of a command topic of this device, else None."""
        own = f"{self.prefix}/cmd/"
        if topic.startswith(own):
            rest = topic[len(own) :]
            return rest if rest and "/" not in rest else None
        for g in self.groups:
            grp = f"{self.group_prefix}/{g}/cmd/"
            if topic.startswith(grp):
                rest = topic[len(grp) :]
                return rest if rest and "/" not in rest else None
        return None


def group_cmd_topic(group_prefix: str, group: str, name: str) -> str:
    """``<group_prefix>/<group>/cmd/<name>`` (default ``edge/group/<group>/cmd/<name>``)."""
    return f"{group_prefix}/{_check_level(group, 'group name')}/cmd/{_check_level(name, 'name')}"


def device_of(topic: str, root: str = "edge") -> tuple[str, str] | None:
    """``edge/<device>/<stream>`` -> (device, stream) for the fleet side; None if not one."""
    parts = topic.split("/")
    root_parts = root.split("/")
    if parts[: len(root_parts)] != root_parts or len(parts) != len(root_parts) + 2:
        return None
    device, stream = parts[len(root_parts)], parts[len(root_parts) + 1]
    if device == "group" or stream not in STREAMS:
        return None
    return device, stream
