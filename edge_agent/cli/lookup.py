"""Which configuration file a command reads: one rule for every command.

The agent's file (``agent.toml``): ``-c/--config FILE``, else ``$EDGE_AGENT_CONFIG``, else
``/etc/edge-agent/agent.toml`` when it exists, else the embedded defaults. The operator's file
for the central side (``fleet.toml``: broker, credentials, TLS, registry, fleet serve) is found
the same way with ``$EDGE_FLEET_CONFIG`` and ``/etc/edge-fleet/fleet.toml``.

A file named by the flag or the variable must exist (its absence is an error that says which
one named it); the system file is used only when it exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import typer

AGENT_ENV = "EDGE_AGENT_CONFIG"
AGENT_SYSTEM = Path("/etc/edge-agent/agent.toml")
FLEET_ENV = "EDGE_FLEET_CONFIG"
FLEET_SYSTEM = Path("/etc/edge-fleet/fleet.toml")

CONFIG_HELP = (
    "Agent config file (TOML). Default: $EDGE_AGENT_CONFIG, else /etc/edge-agent/agent.toml "
    "if it exists, else the built-in defaults."
)
FLEET_CONFIG_HELP = (
    "Operator config file (fleet.toml: broker, credentials, TLS, registry, fleet serve). "
    "Default: $EDGE_FLEET_CONFIG, else /etc/edge-fleet/fleet.toml if it exists, else defaults."
)


@dataclass(frozen=True)
class Found:
    """The file a command reads (None: the defaults) and what chose it."""

    path: Path | None
    origin: str  # "--config", "$EDGE_AGENT_CONFIG", "/etc/edge-agent/agent.toml", "defaults"

    def describe(self) -> str:
        if self.path is None:
            return "built-in defaults (no --config, no $EDGE_AGENT_CONFIG, no system file)" \
                if self.origin == "defaults" else self.origin
        return f"{self.path} (from {self.origin})"

    def to_json(self) -> dict[str, str | None]:
        return {"file": None if self.path is None else str(self.path), "from": self.origin}


def find(
    given: Path | None,
    env_var: str = AGENT_ENV,
    system: Path = AGENT_SYSTEM,
    environ: Mapping[str, str] | None = None,
) -> Found:
    """Flag, then the environment variable, then the system file, then the defaults."""
    env = os.environ if environ is None else environ
    if given is not None:
        return Found(given, "--config")
    value = env.get(env_var, "").strip()
    if value:
        return Found(Path(value), f"${env_var}")
    if system.is_file():
        return Found(system, str(system))
    return Found(None, "defaults")


def find_fleet(given: Path | None, environ: Mapping[str, str] | None = None) -> Found:
    return find(given, FLEET_ENV, FLEET_SYSTEM, environ)


def config_path(given: Path | None) -> Path | None:
    """The agent config file a command reads (None: the defaults)."""
    return find(given).path


def fleet_config_path(given: Path | None) -> Path | None:
    return find_fleet(given).path


# The one -c option of each kind: every command that reads a config takes it.
CONFIG = typer.Option(None, "--config", "-c", metavar="FILE", help=CONFIG_HELP)
FLEET_CONFIG = typer.Option(None, "--config", "-c", metavar="FILE", help=FLEET_CONFIG_HELP)
