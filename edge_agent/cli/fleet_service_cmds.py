"""CLI: ``fleet serve``, ``fleet status`` and ``fleet rollout ...`` (issue 16).

``serve`` runs the central service; the others talk to it over its HTTP API: ``--server URL``
or ``[fleet] server`` (else ``[fleet] listen``) of ``-c fleet.toml``, with ``--token-file`` or
``[fleet] token_file``. ``fleet watch`` and ``push-update`` need no service. The file is found like
every config: ``-c``, ``$EDGE_FLEET_CONFIG``, ``/etc/edge-fleet/fleet.toml``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..common.extras import pip_hint
from ..errors import ConfigError
from .common import handle_errors, print_json
from .fleet_cmds import app, load_fleet
from .lookup import FLEET_CONFIG, fleet_config_path

if TYPE_CHECKING:
    from ..fleet.client import FleetClient

rollout_app = typer.Typer(no_args_is_help=True,
                          help="Rollouts in waves through `fleet serve` (start, list, status, "
                          "pause, resume, abort).")
app.add_typer(rollout_app, name="rollout")

FleetConfigOpt = FLEET_CONFIG
ServerOpt = typer.Option(None, "--server", help="URL of fleet serve (default: from -c FILE)")
TokenOpt = typer.Option(None, "--token-file", help="File with the HTTP API token")
JsonOpt = typer.Option(False, "--json", help="Print JSON")


def _central_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"fleet serve needs the central extra ({exc.name} is missing): "
                          + pip_hint("central")) from None


@app.command("serve")
@handle_errors
def serve_cmd(
    config: Path | None = FleetConfigOpt,
    broker: str | None = typer.Option(None, "--broker", help="HOST[:PORT] of the broker"),
    listen: str | None = typer.Option(None, "--listen", help="HOST:PORT of the HTTP API"),
    database: str | None = typer.Option(None, "--database",
                                        help="SQLite file or postgresql:// URL of the store"),
    client_id: str | None = typer.Option(None, "--client-id",
                                         help="MQTT client id of this replica ([fleet] "
                                         "client_id; one per replica, stable across restarts)"),
    advertise: str | None = typer.Option(None, "--advertise", help="URL of this replica's "
                                         "HTTP API for the others ([fleet] advertise)"),
) -> None:
    """The central service: fleet state from MQTT, rollouts in waves, HTTP API, dashboard.

    Example: edge-agent fleet serve -c /etc/edge-fleet/fleet.toml
    """
    _central_extra()
    from ..fleet.server import serve

    cfg = load_fleet(config)
    if broker:
        host, _, port = broker.rpartition(":") if broker.count(":") == 1 else (broker, "", "")
        try:
            cfg.mqtt.host, cfg.mqtt.port = host or broker, int(port) if port else cfg.mqtt.port
        except ValueError:
            raise ConfigError(f"--broker {broker!r}: expected HOST or HOST:PORT") from None
    if listen:
        cfg.fleet.listen = listen
    if database:
        cfg.fleet.database = database
    if client_id:
        from pydantic import ValidationError

        from ..fleet.config import FleetSection

        try:
            FleetSection(client_id=client_id)
        except ValidationError:
            raise ConfigError(f"--client-id {client_id!r}: must be one plain topic level (no "
                              "+ # / $, no control characters)") from None
        cfg.fleet.client_id = client_id
    if advertise:
        cfg.fleet.advertise = advertise
    serve(cfg)


@app.command("simulate")
@handle_errors
def simulate_cmd(
    config: Path | None = FleetConfigOpt,
    devices: int = typer.Option(100, "--devices", min=1, max=50_000, help="How many devices"),
    broker: str | None = typer.Option(None, "--broker",
                                      help="HOST:PORT of the broker (default: [mqtt] of -c)"),
    name: str = typer.Option("sim", "--name", help="Device ids <name>-00001 ..."),
    groups: str = typer.Option("sim", "--groups", help="Groups, comma-separated (round robin)"),
    metrics_s: float = typer.Option(10.0, "--metrics-interval", min=0.05, help="Seconds"),
    events_per_s: float = typer.Option(0.05, "--events-per-s", min=0.0, help="Per device"),
    drop_rate: float = typer.Option(0.0, "--drop-rate", min=0.0, max=1.0,
                                    help="Metrics/events records deliberately dropped"),
    fail_rate: float = typer.Option(0.0, "--fail-rate", min=0.0, max=1.0,
                                    help="Updates that end rolled_back"),
    reject_rate: float = typer.Option(0.0, "--reject-rate", min=0.0, max=1.0,
                                      help="Updates that end rejected"),
    offline_rate: float = typer.Option(0.0, "--offline-rate", min=0.0, max=1.0,
                                       help="Devices that go away once (last will)"),
    offline_s: float = typer.Option(20.0, "--offline-s", min=0.0, help="How long away"),
    offline_after_s: float = typer.Option(5.0, "--offline-after-s", min=0.0,
                                          help="Away at a random time within this"),
    step_s: float = typer.Option(0.2, "--update-step-s", min=0.0, help="Each update state"),
    model: str = typer.Option("sim-model 1", "--model", help="The active model: NAME VERSION"),
    duration: float | None = typer.Option(None, "--duration", help="Seconds (default: until "
                                          "SIGTERM/SIGINT)"),
    report: Path | None = typer.Option(None, "--report", help="JSON report, rewritten every "
                                       "5 s and at the end"),
    connect_per_s: float = typer.Option(200.0, "--connect-rate", min=1.0,
                                        help="Connections per second at start (a broker "
                                        "whose listen backlog overflows stalls them)"),
    seed: int = typer.Option(1, "--seed", help="Random seed (drops, failures, phases)"),
    as_json: bool = JsonOpt,
) -> None:
    """Simulated devices speaking the MQTT contract (docs/mqtt.md) to drive `fleet serve`
    at fleet scale on one machine (plain TCP; the broker of -c fleet.toml or --broker).

    Example: edge-agent fleet simulate --devices 1000 --broker 127.0.0.1:1883 --drop-rate 0.01
    """
    from ..fleet.simdevice import SimSettings
    from ..fleet.simulate import main

    cfg = load_fleet(config)
    where = broker or f"{cfg.mqtt.host}:{cfg.mqtt.port}"
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--broker {where!r}: expected HOST:PORT")
    mname, _, mversion = model.rpartition(" ")
    if not mname:
        raise ConfigError(f"--model {model!r}: expected NAME VERSION")
    s = SimSettings(devices=devices, name=name, groups=tuple(g for g in groups.split(",") if g)
                    or ("sim",), metrics_s=metrics_s, events_per_s=events_per_s,
                    drop_rate=drop_rate, fail_rate=fail_rate, reject_rate=reject_rate,
                    offline_rate=offline_rate, offline_s=offline_s,
                    offline_after_s=offline_after_s, update_step_s=step_s, model=mname,
                    version=mversion, seed=seed)
    out = main(s, host, int(port), duration=duration, report=report,
               connect_per_s=connect_per_s)
    summary = {k: v for k, v in out.items() if k != "devices"}
    if as_json:
        print_json(summary)
    else:
        c = summary["counters"]
        typer.echo(f"{devices} device(s): {c.get('published', 0)} records published, "
                   f"dropped on purpose {summary['dropped'] or 'none'}, "
                   f"{c.get('commands', 0)} commands, {c.get('offline_periods', 0)} offline "
                   "period(s)")


def _client(config: Path | None, server: str | None, token_file: Path | None) -> FleetClient:
    from ..fleet.client import FleetClient
    from ..fleet.config import read_token

    cfg = load_fleet(config)
    found = fleet_config_path(config) is not None
    url = server or cfg.fleet.server or (f"http://{cfg.fleet.listen}" if found else None)
    if url is None:
        raise ConfigError("no fleet serve given: --server URL or -c fleet.toml ([fleet] server); "
                          "without a service use `fleet watch` / `fleet push-update`")
    token = read_token(token_file, "--token-file") if token_file else read_token(
        cfg.fleet.token_file)
    return FleetClient(url, token)


@app.command("status")
@handle_errors
def status_cmd(config: Path | None = FleetConfigOpt, server: str | None = ServerOpt,
               token_file: Path | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Devices as fleet serve knows them: online, active model, last seen, lost records.

    Example: edge-agent fleet status --server http://fleet:8780 --json
    """
    devices = _client(config, server, token_file).get("/v1/devices")
    if as_json:
        for d in devices:
            print_json(d)
        return
    typer.echo(f"{'device':20} {'state':8} {'active':24} {'groups':16} {'seen':>9} lost")
    for d in devices:
        seen = "-" if d.get("last_seen") is None else f"{time.time() - d['last_seen']:.0f}s ago"
        lost = f"{d['gaps']}" + (f" (+{d['lost']} reported)" if d.get("lost") else "")
        typer.echo(f"{d['device']:20} {'online' if d.get('online') else 'offline':8} "
                   f"{d.get('active') or '-':24} {','.join(d.get('groups') or []):16} "
                   f"{seen:>9} {lost}")


@rollout_app.command("start")
@handle_errors
def start_cmd(
    model: str = typer.Option(..., "--model", help="Model name in the registry"),
    version: str = typer.Option(..., "--version", help="Version to roll out"),
    group: str | None = typer.Option(None, "--group", help="Every device of this group"),
    devices: str | None = typer.Option(None, "--devices", help="Or these devices: a,b,c"),
    waves: str = typer.Option("1,10%,50%,100%", "--waves",
                              help="Cumulative wave sizes: counts or percentages, last 100%"),
    success: str = typer.Option("95%", "--success-threshold",
                                help="A wave advances when this share of it committed"),
    error: str = typer.Option("10%", "--error-threshold",
                              help="A wave halts when this share of it failed"),
    min_executed: int = typer.Option(3, "--min-executed", min=1,
                                     help="...once at least this many of it finished"),
    wave_timeout: str = typer.Option("15m", "--wave-timeout",
                                     help="A device not finished by then counts as failed"),
    on_halt: str = typer.Option("pause", "--on-halt", help="pause | rollback"),
    registry: str | None = typer.Option(None, "--registry", help="Registry base URL"),
    config: Path | None = FleetConfigOpt, server: str | None = ServerOpt,
    token_file: Path | None = TokenOpt, as_json: bool = JsonOpt,
) -> None:
    """Start a rollout: wave 1 is pushed at once, each next one when the last succeeded.

    Example: edge-agent fleet rollout start --model digits --version 1.4.0 --group lab
    """
    if (group is None) == (devices is None):
        raise ConfigError("give --group G or --devices a,b,... (one of them)")
    body: dict[str, Any] = {
        "model": model, "version": version, "group": group,
        "devices": [d.strip() for d in devices.split(",") if d.strip()] if devices else None,
        "waves": waves, "success_threshold": success, "error_threshold": error,
        "min_executed": min_executed, "wave_timeout": wave_timeout, "on_halt": on_halt,
        "registry": registry,
    }
    r = _client(config, server, token_file).post("/v1/rollouts", body)
    _show(r, as_json)


@rollout_app.command("list")
@handle_errors
def list_cmd(config: Path | None = FleetConfigOpt, server: str | None = ServerOpt,
             token_file: Path | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Every rollout: id, model version, state, current wave.

    Example: edge-agent fleet rollout list
    """
    for r in _client(config, server, token_file).get("/v1/rollouts"):
        if as_json:
            print_json(r)
        else:
            typer.echo(f"{r['id']}  {r['model']} {r['version']}  {r['state']:8} wave "
                       f"{r['wave']}/{r['waves']}  {r['devices']} device(s)  {r['reason']}")


def _operate(action: str) -> Any:
    @handle_errors
    def cmd(rollout_id: str = typer.Argument(..., help="Rollout id"),
            config: Path | None = FleetConfigOpt, server: str | None = ServerOpt,
            token_file: Path | None = TokenOpt, as_json: bool = JsonOpt) -> None:
        client = _client(config, server, token_file)
        path = f"/v1/rollouts/{rollout_id}" + ("" if action == "status" else f"/{action}")
        r = client.get(path) if action == "status" else client.post(path)
        _show(r, as_json)
    cmd.__doc__ = {
        "status": "Waves with their progress, every device, every decision and its reason.",
        "pause": "Pause: nothing more is pushed until resume.",
        "resume": "Resume a paused rollout; a halted one goes on with its next wave.",
        "abort": "Stop for good (devices already updating finish on their own).",
    }[action] + f"\n\nExample: edge-agent fleet rollout {action} ROLLOUT_ID --json"
    return cmd


for _action in ("status", "pause", "resume", "abort"):
    rollout_app.command(_action)(_operate(_action))


def _show(r: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(r)
        return
    p = r["policy"]
    typer.echo(f"rollout {r['id']}: {r['model']} {r['version']} — {r['state']}, wave "
               f"{r['wave']} of {r['waves']} (waves {','.join(p['waves'])}, success >= "
               f"{p['success_threshold']:g}%, error >= {p['error_threshold']:g}%, min executed "
               f"{p['min_executed']}, wave timeout {p['wave_timeout_s']:g} s, on halt "
               f"{p['on_halt']})")
    if r["reason"]:
        typer.echo(f"  {r['reason']}")
    for w in r["progress"]:
        typer.echo(f"  wave {w['wave']}: {w['committed']}/{w['size']} committed, {w['failed']} "
                   f"failed, {w['pending']} in progress, {w['waiting']} waiting ({w['state']})")
    for t in r["targets"]:
        why = f" {t['reason']}" if t["reason"] else ""
        late = f" (late: {t['late']})" if t.get("late") else ""
        typer.echo(f"    {t['device']:20} wave {t['wave'] or '-'}  {t['state']:13}{why}{late}")
    typer.echo("  decisions:")
    for d in r["decisions"]:
        when = time.strftime("%H:%M:%S", time.localtime(d["ts"]))
        typer.echo(f"    {when} {d['kind']}: {d['reason']}")
