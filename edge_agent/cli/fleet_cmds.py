"""CLI group: fleet watch/cmd (issue 4); push-update (issue 5) joins here.

Every command connects with the operator's file (``-c fleet.toml``, else ``$EDGE_FLEET_CONFIG``,
else ``/etc/edge-fleet/fleet.toml``: its ``[mqtt]`` section, the same keys as the agent's) and/or
``--broker HOST[:PORT]`` plus TLS and credential options, which override the file. The password:
``--password-file``, ``[mqtt] password_file``, or ``$EDGE_FLEET_MQTT__PASSWORD``.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ..common.atomicfile import atomic_write_bytes
from ..errors import ConfigError
from ..mqtt.errors import CommandTimeout, CredentialsError
from .common import existing, handle_errors, print_json
from .lookup import FLEET_CONFIG, find_fleet

if TYPE_CHECKING:
    from ..fleet.config import FleetFile
    from ..mqtt.link import LinkSettings

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(no_args_is_help=True, help="Watch devices and send them commands over MQTT.")

BrokerOpt = typer.Option(None, "--broker", help="HOST[:PORT] of the broker (default localhost)")
ConfigOpt = FLEET_CONFIG
CaOpt = typer.Option(None, "--ca", help="CA bundle that signed the broker's certificate (TLS)")
CertOpt = typer.Option(None, "--cert", help="Client certificate (PEM) for TLS")
KeyOpt = typer.Option(None, "--key", help="Client private key (PEM) for TLS")
UserOpt = typer.Option(None, "--username", help="Broker user name")
PwFileOpt = typer.Option(
    None, "--password-file", help="File with the password (or $EDGE_FLEET_MQTT__PASSWORD)"
)
ProtoOpt = typer.Option(None, "--protocol", help="5 (default) or 3.1.1")
RootOpt = typer.Option("edge", "--root", help="Topic root of the devices (edge/<device>/...)")


def _expires_opt(default: str) -> Any:
    return typer.Option(
        None, "--expires", metavar="SECONDS|never",
        help=f"The device refuses the command (`expired`) if it gets it later than this; "
        f"default: {default}. `never`: run it whenever the device comes back",
    )


def expires_at(spec: str | None, default_s: float) -> float | None:
    """``expires_at`` for a command sent now (see ``mqtt.commands.expires_at_for``)."""
    from ..mqtt.commands import expires_at_for

    try:
        return expires_at_for(spec, default_s, time.time())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Connection:
    """The broker options every fleet command takes (added by :func:`broker_options`)."""

    broker: str | None = None
    root: str = "edge"
    config: Path | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    protocol: str | None = None

    def settings(self) -> tuple[LinkSettings, str]:
        return connection(self.broker, self.config, self.ca, self.cert, self.key,
                          self.username, self.password_file, self.protocol)

    def targets(
        self, group_prefix: str, device: str | None, group: str | None, name: str
    ) -> tuple[str, str]:
        """(command topic, reply filter) of command ``name`` for a device or a group."""
        from ..mqtt.topics import Topics, group_cmd_topic

        if group:
            return group_cmd_topic(group_prefix, group, name), f"{self.root}/+/cmd/{name}/reply"
        topics = Topics(f"{self.root}/{device}", group_prefix)
        return topics.cmd(name), topics.reply(name)


_CONNECTION_OPTIONS: list[tuple[str, Any, Any]] = [
    ("broker", str | None, BrokerOpt),
    ("root", str, RootOpt),
    ("config", Path | None, ConfigOpt),
    ("ca", Path | None, CaOpt),
    ("cert", Path | None, CertOpt),
    ("key", Path | None, KeyOpt),
    ("username", str | None, UserOpt),
    ("password_file", Path | None, PwFileOpt),
    ("protocol", str | None, ProtoOpt),
]


def broker_options(fn: F) -> F:
    """Give a command the common broker options; it receives them as ``conn: Connection``."""
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.name != "conn"]
    extra = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=t)
        for n, t, d in _CONNECTION_OPTIONS
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        conn = Connection(**{n: kwargs.pop(n) for n, _, _ in _CONNECTION_OPTIONS})
        return fn(*args, conn=conn, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{k: v for k, v in fn.__annotations__.items() if k != "conn"},
        **{n: t for n, t, _ in _CONNECTION_OPTIONS},
    }
    return wrapper  # type: ignore[return-value]


def connection(
    broker: str | None,
    config: Path | None,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    username: str | None,
    password_file: Path | None,
    protocol: str | None,
) -> tuple[LinkSettings, str]:
    """Link settings for a central client + the group topics root, from options and config."""
    import os

    from pydantic import SecretStr

    from ..mqtt.link import TLSFiles, settings_from_mqtt

    mqtt = load_fleet(config).mqtt
    if password_file is not None:
        mqtt.password = None
        mqtt.password_file = password_file
    elif mqtt.password_file is None and mqtt.password is None:
        env_pw = os.environ.get("EDGE_FLEET_MQTT__PASSWORD")
        mqtt.password = SecretStr(env_pw) if env_pw else None
    s = settings_from_mqtt(mqtt, client_id=f"edge-fleet-{uuid.uuid4().hex[:10]}")
    if broker:
        host, _, port = broker.rpartition(":") if broker.count(":") == 1 else (broker, "", "")
        try:
            s = replace(s, host=host or broker, port=int(port) if port else s.port)
        except ValueError:
            raise ConfigError(f"--broker {broker!r}: expected HOST or HOST:PORT") from None
    if protocol is not None:
        if protocol not in ("5", "3.1.1"):
            raise ConfigError(f"--protocol {protocol!r}: expected 5 or 3.1.1")
        s = replace(s, protocol=protocol)
    if username is not None:
        s = replace(s, username=username)
    if ca or cert or key:
        base = s.tls or TLSFiles()
        s = replace(s, tls=TLSFiles(ca or base.ca, cert or base.cert, key or base.key))
    if s.tls and s.tls.key is not None and s.tls.cert is None:
        raise CredentialsError("--key needs --cert")
    return s, mqtt.group_prefix


def load_fleet(config: Path | None) -> FleetFile:
    """The operator's file found like every config (:func:`.lookup.find_fleet`)."""
    from ..fleet.config import load_fleet_config

    return load_fleet_config(existing(find_fleet(config)))


def parse_params(items: list[str]) -> dict[str, Any]:
    """Command parameters as a shell user writes them: ``k=v`` is the string ``v`` (so
    ``version=2.0`` stays "2.0", ``id=007`` stays "007"; the device converts a string where it
    wants a number), ``k:=JSON`` is a JSON value (``threshold:=0.5``, ``annotate:=true``,
    ``pins:=[1,2]``), as in HTTPie."""
    params: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k or k == ":":
            raise ConfigError(f"parameter {item!r}: expected key=value (a string) or "
                              "key:=JSON (a number, true/false, null, a list or an object)")
        if k.endswith(":"):
            k = k[:-1]
            try:
                params[k] = json.loads(v)
            except ValueError as exc:
                raise ConfigError(f"parameter {item!r}: {v!r} is not JSON ({exc}); for a "
                                  f"string write {k}={v}") from None
        else:
            params[k] = v
    return params


def _fmt(v: Any, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def _ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    d = max(0.0, time.time() - ts)
    if d < 120:
        return f"{d:.0f}s"
    return f"{d / 60:.0f}m" if d < 7200 else f"{d / 3600:.0f}h"


WIDE = 110  # columns from which the backend and the offline reason get their own space


def render_table(state: Any, width: int = 80) -> Any:
    """The live table; it fits ``width`` columns (80: a technician's terminal). An offline
    device keeps the model it ran last."""
    from rich.table import Table

    wide = width >= WIDE
    online_count = sum(1 for r in state.rows() if r.online)
    table = Table(title=f"edge-agent fleet: {len(state.devices)} devices, {online_count} online",
                  padding=(0, 1, 0, 0), pad_edge=False, box=None, header_style="bold")
    table.add_column("device", overflow="ellipsis", no_wrap=True, max_width=28 if wide else 20)
    table.add_column("state", no_wrap=True, min_width=7)
    table.add_column("model", overflow="ellipsis", no_wrap=True, max_width=32 if wide else 16)
    if wide:
        table.add_column("backend", no_wrap=True)
    for col in ("fps", "p95", "cpu", "temp", "seen", "gaps"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for r in state.rows():
        why = f" {r.reason}" if wide and r.reason else ""
        online = {True: "[green]online[/]", False: f"[red]offline[/]{why}", None: "?"}[r.online]
        gaps = f"[red]{r.gaps}[/]" if r.gaps else "0"
        if r.lost:
            gaps += f" [yellow]+{r.lost}[/]"
        if r.duplicates and wide:
            gaps += f" ({r.duplicates} dup)"
        model = " ".join(x for x in (r.model, r.version) if x) or "-"
        cells = [r.device, online, model] + ([r.backend or "-"] if wide else [])
        table.add_row(*cells, _fmt(r.fps), _fmt(r.p95_ms, "ms", 0), _fmt(r.cpu_percent, "%", 0),
                      _fmt(r.temperature_c, "°C", 0), _ago(r.last_seen), gaps)
    return table


@app.command("watch")
@handle_errors
@broker_options
def watch_cmd(
    conn: Connection,
    as_json: bool = typer.Option(False, "--json", help="One JSON line per device update"),
    duration: float | None = typer.Option(None, "--duration", min=0, help="Stop after S seconds"),
    count: int | None = typer.Option(None, "--count", min=1, help="Stop after N records"),
) -> None:
    """Live table of devices: online, model, fps, p95, CPU, temperature, last seen, seq gaps
    (+ reported lost); it fits 80 columns (backend and offline reason from 110).

    Example: edge-agent fleet watch -c /etc/edge-fleet/fleet.toml
    """
    from ..mqtt.central import watch

    settings, _ = conn.settings()
    root = conn.root
    if as_json:
        watch(settings, lambda row: print_json(row.to_json()), root=root, duration=duration,
              count=count)
        return
    from rich.console import Console
    from rich.live import Live

    from ..mqtt.fleet import FleetState

    console = Console()
    with Live(render_table(FleetState(root), console.width), console=console,
              auto_refresh=False) as live:

        def refresh(state: FleetState) -> None:
            live.update(render_table(state, console.width), refresh=True)

        final = watch(settings, lambda row: None, root=root, duration=duration, count=count,
                      on_idle=refresh)
        refresh(final)


@app.command("cmd", context_settings={"allow_extra_args": False})
@handle_errors
@broker_options
def cmd_cmd(
    conn: Connection,
    args: list[str] = typer.Argument(
        ..., metavar="[DEVICE] NAME [K=V]",
        help="Device id (not with --group), command name, then parameters: key=value (a string) "
        "or key:=JSON (number, true/false, list)"),
    group: str | None = typer.Option(None, "--group", help="Send to a group instead of a device"),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for replies"),
    req_id: str | None = typer.Option(None, "--id", help="Command id (repeat one safely)"),
    expires: str | None = _expires_opt("--timeout"),
    as_json: bool = typer.Option(
        False, "--json", help="Accepted for uniformity: replies are always JSON lines"),
    out: Path | None = typer.Option(
        None, "--out", "-o", metavar="FILE",
        help="snapshot: save the device's JPEG here (its reply gains `saved`)"),
) -> None:
    """Send a command (ping, snapshot, reload, update, rollback...) and print the reply.

    Exit code 0 if every reply is ok, 1 if a device answered with an error.

    Example: edge-agent fleet cmd cam-07 snapshot --out cam-07.jpg
    """
    from ..mqtt.central import send_command

    need = 1 if group else 2
    if len(args) < need:
        raise ConfigError("expected DEVICE NAME [k=v ...]" if not group else
                          "expected NAME [k=v ...] after --group G")
    device, name, rest = (None, args[0], args[1:]) if group else (args[0], args[1], args[2:])
    settings, group_prefix = conn.settings()
    topic, reply_filter = conn.targets(group_prefix, device, group, name)
    body: dict[str, Any] = {"id": req_id or uuid.uuid4().hex[:16], "params": parse_params(rest)}
    deadline = expires_at(expires, timeout)
    if deadline is not None:
        body["expires_at"] = deadline
    if out is not None and (group or name != "snapshot"):
        raise ConfigError("--out FILE saves a snapshot: DEVICE snapshot --out FILE (no --group)")
    saved: list[bytes] = []
    also = f"{conn.root}/{device}/snapshot" if out is not None else None
    replies = send_command(settings, topic, body, reply_filter=reply_filter, timeout=timeout,
                           expect=None if group else 1, also=also, on_also=saved.append)
    if out is not None and replies and replies[0].get("ok"):
        if not saved or saved[0][:2] != b"\xff\xd8":
            raise CommandTimeout(f"{device} replied but its JPEG did not come on {also} within "
                                 f"{timeout:g} s")
        try:
            atomic_write_bytes(out, saved[0], mode=0o644)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write the JPEG ({exc.strerror})") from None
        replies[0]["saved"] = {"path": str(out), "bytes": len(saved[0])}
    for r in replies:
        print_json(r)
    if group and not replies:
        raise CommandTimeout(f"no device of group {group} answered {name} within {timeout:g} s "
                             "(none online, or none in that group; see `edge-agent fleet watch`)")
    if not all(r.get("ok") for r in replies):
        raise typer.Exit(1)


@app.command("push-update")
@handle_errors
@broker_options
def push_update_cmd(
    conn: Connection,
    device: str | None = typer.Argument(None, help="Device id (or --group G)"),
    group: str | None = typer.Option(None, "--group", help="Push to every device of a group"),
    model: str = typer.Option(..., "--model", help="Model name in the registry"),
    version: str = typer.Option(..., "--version", help="Version to install"),
    registry: str | None = typer.Option(
        None, "--registry",
        help="Registry base URL (default: the operator file's fleet.registry, else the device's "
        "updates.registry)"
    ),
    deployment: str | None = typer.Option(None, "--deployment", help="Deployment id"),
    timeout: float = typer.Option(300.0, "--timeout", min=1, help="Seconds to follow progress"),
    reply_wait: float = typer.Option(
        5.0, "--reply-wait", min=0.1, help="Seconds to collect a group's replies to `update`"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print each record as a JSON line"),
    expires: str | None = _expires_opt("the time it waits for replies (10 s; --reply-wait)"),
) -> None:
    """Send `update` and follow <device>/update until committed, rejected or rolled back.

    Exit code 0 when every device committed the model, 1 otherwise.

    Example: edge-agent fleet push-update --group lab --model digits --version 1.4.0
    """
    from ..updates.push import push_update

    if (device is None) == (group is None):
        raise ConfigError("give a DEVICE or --group G (one of them)")
    settings, group_prefix = conn.settings()
    cmd_topic, reply_filter = conn.targets(group_prefix, device, group, "update")
    update_filter = f"{conn.root}/{'+' if group else device}/update"
    params: dict[str, Any] = {"model": model, "version": version}
    registry = registry or load_fleet(conn.config).fleet.registry
    if registry:
        params["registry"] = registry
    if deployment:
        params["deployment"] = deployment

    def show(dev: str, rec: dict[str, Any]) -> None:
        if as_json:
            print_json({"device": dev, **rec})
            return
        prog = f" {rec['progress'] * 100:.0f}%" if rec.get("progress") is not None else ""
        why = f" {rec.get('reason', '')}: {rec.get('detail', '')}" if rec.get("reason") else ""
        typer.echo(f"{dev}: {rec.get('state')}{prog}{why}")

    reply_timeout = reply_wait if group else 10.0
    res = push_update(settings, cmd_topic=cmd_topic, reply_filter=reply_filter,
                      update_filter=update_filter, params=params, group=group is not None,
                      timeout=timeout, on_record=show, reply_timeout=reply_timeout,
                      expires_at=expires_at(expires, reply_timeout))
    for dev, why in res.refused.items():
        typer.echo(f"{dev}: refused: {why}", err=True)
    missing = [d for d in res.accepted if d not in res.final]
    for dev in missing:
        typer.echo(f"{dev}: no final state within {timeout:g} s", err=True)
    if not res.accepted and not res.refused:
        typer.echo("no device accepted the update", err=True)
    if not res.ok:
        raise typer.Exit(1)
