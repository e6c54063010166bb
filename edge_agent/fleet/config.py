"""``fleet.toml``: the ``[fleet]`` section of ``fleet serve`` and its clients, plus ``[mqtt]``
(the same keys as the agent's: host, port, TLS, username, password_file...).

```toml
[fleet]
database = "/var/lib/edge-fleet/fleet.sqlite"
listen = "127.0.0.1:8780"        # a non-loopback address needs token_file
token_file = "/etc/edge-fleet/token"
registry = "https://models.example.com/registry"   # default registry of rollouts
server = "http://fleet.example.com:8780"           # for `fleet rollout` / `fleet status`
[mqtt]
host = "broker.example.com"
```
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import MQTTConfig, read_toml, validation_message
from ..config import read_token as read_token_file
from ..errors import ConfigError


def default_database() -> str:
    return str(_default_sqlite())


def _default_sqlite() -> Path:
    state = os.environ.get("STATE_DIRECTORY")  # systemd StateDirectory=
    if state:
        return Path(state.split(":")[0]) / "fleet.sqlite"
    if os.geteuid() == 0:
        return Path("/var/lib/edge-fleet/fleet.sqlite")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edge-fleet" / "fleet.sqlite"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FleetSection(_Section):
    database: str = Field(default_factory=default_database,
                          description="SQLite file, or a postgresql:// URL (replicas)")
    listen: str = Field(default="127.0.0.1:8780", description="HOST:PORT of the HTTP API")
    token_file: Path | None = Field(default=None, description="Bearer token of the HTTP API")
    share_group: str = Field(default="fleet", description="MQTT 5 shared subscription group")
    shared: bool = Field(default=True, description="Shared subscriptions (replicas split the "
                         "load); false: plain ones, which mosquitto keeps over its restart")
    client_id: str = Field(default="edge-fleet-serve", description="One per replica")
    advertise: str | None = Field(default=None, description="URL of this replica's HTTP API "
                                  "for the other replicas (default: http://<listen> when "
                                  "listen names an address)")
    root: str = Field(default="edge", description="Topic root of the devices")
    registry: str | None = Field(default=None, description="Default registry of rollouts")
    server: str | None = Field(default=None, description="URL of fleet serve, for clients")
    max_devices: int = Field(default=100_000, ge=1, le=10_000_000)

    @field_validator("share_group", "root", "client_id")
    @classmethod
    def _level(cls, v: str) -> str:
        if not v or any(c in v for c in "+#/$\0") or not v.isprintable():
            raise ValueError("must be one plain topic level (no + # / $, no control characters)")
        return v


class FleetFile(_Section):
    fleet: FleetSection = Field(default_factory=FleetSection)
    mqtt: MQTTConfig = Field(default_factory=MQTTConfig)


def load_fleet_config(path: Path | None) -> FleetFile:
    if path is None:
        return FleetFile()
    data, text = read_toml(path)
    try:
        cfg = FleetFile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(validation_message(err, str(path), text)) from None
    base = path.parent
    f = cfg.fleet
    if not is_url(f.database) and not Path(f.database).is_absolute():
        f.database = str(base / f.database)
    if f.token_file is not None and not f.token_file.is_absolute():
        f.token_file = base / f.token_file
    m = cfg.mqtt
    if m.password_file is not None and not m.password_file.is_absolute():
        m.password_file = base / m.password_file
    return cfg


def is_url(database: str) -> bool:
    """A ``postgresql://`` (or ``postgres://``) URL rather than a SQLite file."""
    return database.startswith(("postgresql://", "postgres://"))


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"fleet.listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8780")
    return host.strip("[]") or "127.0.0.1", int(port)


def read_token(path: Path | None, what: str = "fleet.token_file") -> str | None:
    return read_token_file(path, what)
