"""Topic names of the MQTT contract (docs/mqtt.md). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

STREAMS = ("status", "metrics", "events", "update")
"""Streams a device publishes; each record carries a per-stream ``seq``."""


def _check_level(value: str, what: str) -> str:
    if not value or any(c in value for c in "+#/\0"):
        raise ValueError(f"{what} {value!r} must be one non-empty topic level without + # /")
    return value


MAX_PREFIX_CHARS = 512


def check_prefix(value: str, what: str = "topic prefix") -> str:
    """A topic prefix must be a plain topic: levels without wildcards or control characters.

    Refused: empty, a leading/trailing ``/`` or an empty level (``a//b``), the wildcards
    ``+`` and ``#``, NUL and other control characters, a leading ``$`` (broker topics), more
    than :data:`MAX_PREFIX_CHARS` characters. Raises ValueError saying which.
    """
    why = None
    bad = next((c for c in value if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F), None)
    if not value:
        why = "is empty"
    elif "+" in value or "#" in value:
        why = "contains the MQTT wildcard " + ("+" if "+" in value else "#")
    elif bad is not None:
        why = f"contains the control character U+{ord(bad):04X}"
    elif value.startswith("/") or value.endswith("/") or "//" in value:
        why = "has an empty level (a leading, trailing or double /)"
    elif value.startswith("$"):
        why = "starts with $ (reserved for broker topics such as $SYS)"
    elif len(value) > MAX_PREFIX_CHARS:
        why = f"is {len(value)} characters long; at most {MAX_PREFIX_CHARS}"
    if why is not None:
        raise ValueError(f"{what} {value[:80]!r} {why}; use a plain topic like edge/dev1")
    return value


@dataclass(frozen=True)
class Topics:
    """Every topic one device uses, built from its prefix (default ``edge/<device_id>``)."""

    prefix: str
    group_prefix: str = "edge/group"
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_prefix(self.group_prefix, "group prefix")
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
