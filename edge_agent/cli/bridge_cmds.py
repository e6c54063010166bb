"""CLI group: ``edge-agent bridge ping | info | telemetry | watch | gpio set/get`` (issue 6).

Each command talks to the board on ``--port`` (any pyserial URL or device path), else on
``[bridge] port`` of the config; prints a human line or, with ``--json``, one JSON object
(``watch``: one JSON line per event/telemetry sample). Errors are one line with an exit code.
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from firmware_bridge.errors import BridgeError

from .common import fail, handle_errors, load, print_json
from .lookup import CONFIG

if TYPE_CHECKING:
    from firmware_bridge import BridgeClient, Event

app = typer.Typer(no_args_is_help=True, help="Talk to the board's firmware over the serial bridge.")
gpio_app = typer.Typer(no_args_is_help=True, help="Set or read a GPIO pin on the board.")
app.add_typer(gpio_app, name="gpio")

F = TypeVar("F", bound=Callable[..., Any])

PORT = typer.Option(None, "--port", "-p", help="pyserial URL or device; default [bridge] port")
JSON = typer.Option(False, "--json", help="Print JSON")


def _bridge_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BridgeError as exc:
            raise fail(str(exc), exc.exit_code) from None

    return handle_errors(wrapper)  # type: ignore[return-value]


@contextmanager
def _connect(port: str | None, config: Path | None) -> Iterator[BridgeClient]:
    from firmware_bridge import BridgeClient

    b = load(config).bridge
    with BridgeClient(
        port or b.port, baudrate=b.baudrate, timeout_s=b.timeout_s, retries=b.retries
    ).open(wait=True) as client:
        yield client


@app.command()
@_bridge_errors
def ping(
    port: str | None = PORT,
    config: Path | None = CONFIG,
    count: int = typer.Option(5, "--count", "-n", min=1, max=100_000, help="Pings to send"),
    size: int = typer.Option(0, "--size", min=0, max=240, help="Payload bytes"),
    as_json: bool = JSON,
) -> None:
    """Ping the board; print round-trip times.

    Example: edge-agent bridge ping --port /dev/ttyACM0 --count 20
    """
    payload = bytes(i & 0xFF for i in range(size))
    with _connect(port, config) as c:
        rtts = sorted(c.ping(payload) * 1000 for _ in range(count))
        counters = c.counters()
    p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
    out: dict[str, Any] = {
        "port": c.url,
        "count": count,
        "size": size,
        "rtt_ms": {"min": rtts[0], "p50": statistics.median(rtts), "p99": p99, "max": rtts[-1]},
        "retries": counters["retries"],
    }
    if as_json:
        print_json(out)
    else:
        r = out["rtt_ms"]
        typer.echo(
            f"{c.url}: {count} pings of {size} B: rtt min {r['min']:.3f} / p50 {r['p50']:.3f} / "
            f"p99 {r['p99']:.3f} / max {r['max']:.3f} ms, retries {counters['retries']}"
        )


@app.command()
@_bridge_errors
def info(port: str | None = PORT, config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """Board identity: firmware, bitstream, capabilities, last reset reason.

    Example: edge-agent bridge info --json
    """
    with _connect(port, config) as c:
        hello = c.hello()
    if as_json:
        print_json({"port": c.url, **hello.to_json()})
        return
    typer.echo(
        f"{hello.name} on {c.url}: firmware {hello.firmware}, bitstream 0x{hello.bitstream:08x}, "
        f"protocol {hello.proto}\n"
        f"last reset: {hello.reset_reason} (boot {hello.boot_count})\n"
        f"capabilities: {', '.join(hello.capabilities) or '-'}\n"
        f"outputs: {_pins(hello.outputs)}  inputs: {_pins(hello.inputs)}"
    )


def _pins(pins: list[int]) -> str:
    return ",".join(map(str, pins)) or "-"


def _telemetry_line(t: dict[str, Any]) -> str:
    return (
        f"power {t['power_w']:.2f} W ({t['rail_v']:.2f} V x {t['rail_a']:.3f} A) | "
        f"board {t['board_temp_c']:.1f} C | accel {t['accel_temp_c']:.1f} C, "
        f"util {t['accel_util'] * 100:.0f} % | fan {t['fan_rpm']} rpm | "
        f"up {t['uptime_s']:.1f} s | watchdog {t['watchdog_timeout_ms'] or 'off'}"
    )


@app.command()
@_bridge_errors
def telemetry(port: str | None = PORT, config: Path | None = CONFIG, as_json: bool = JSON) -> None:
    """Power, temperatures, fan and accelerator load, read once.

    Example: edge-agent bridge telemetry -c /etc/edge-agent/agent.toml
    """
    with _connect(port, config) as c:
        t = c.telemetry().to_json()
    if as_json:
        print_json(t)
    else:
        typer.echo(_telemetry_line(t))


@app.command()
@_bridge_errors
def watch(
    port: str | None = PORT,
    config: Path | None = CONFIG,
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Telemetry period (s)"),
    duration: float | None = typer.Option(None, "--duration", min=0, help="Stop after (s)"),
    as_json: bool = JSON,
) -> None:
    """Print board events (GPIO, trigger, boot, error) as they come, and telemetry periodically.

    Ctrl-C stops. A board that goes away is waited for (the link reconnects by itself).

    Example: edge-agent bridge watch --interval 0.5 --duration 60 --json
    """
    lock = threading.Lock()

    def show(obj: dict[str, Any], line: str) -> None:
        with lock:
            if as_json:
                print_json(obj)
            else:
                typer.echo(line)

    closing = threading.Event()

    def on_event(e: Event) -> None:
        if closing.is_set():
            return
        detail = " ".join(f"{k}={v}" for k, v in e.data.items())
        show({"t": round(time.time(), 3), **e.to_json()}, f"event {e.kind} {detail}")

    deadline = None if duration is None else time.monotonic() + duration
    with _connect(port, config) as c:
        c.add_listener(on_event)
        while deadline is None or time.monotonic() < deadline:
            try:
                t = c.telemetry().to_json()
                show({"t": round(time.time(), 3), "event": "telemetry", **t}, _telemetry_line(t))
            except BridgeError as exc:
                show({"event": "error", "message": str(exc)}, f"error: {exc}")
            left = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(0.0, left))
        closing.set()


@gpio_app.command("set")
@_bridge_errors
def gpio_set(
    pin: int = typer.Argument(..., min=0, max=254, help="Output pin number"),
    value: int = typer.Argument(..., min=0, max=1, help="Level: 0 or 1"),
    hold_ms: int = typer.Option(0, "--hold-ms", min=0, help="Return to the other level after"),
    port: str | None = PORT,
    config: Path | None = CONFIG,
    as_json: bool = JSON,
) -> None:
    """Drive output PIN to VALUE (0/1), optionally only for --hold-ms.

    Example: edge-agent bridge gpio set 3 1 --hold-ms 500
    """
    with _connect(port, config) as c:
        c.gpio_set(pin, value, hold_ms)
        _, level, _ = c.gpio_get(pin)
    if as_json:
        print_json({"pin": pin, "value": level, "hold_ms": hold_ms})
    else:
        held = f" for {hold_ms} ms" if hold_ms else ""
        typer.echo(f"pin {pin} = {level}{held}")


@gpio_app.command("get")
@_bridge_errors
def gpio_get(
    pin: int = typer.Argument(..., min=0, max=254, help="Pin number (output or input)"),
    port: str | None = PORT,
    config: Path | None = CONFIG,
    as_json: bool = JSON,
) -> None:
    """Read PIN (an output's level or an input).

    Example: edge-agent bridge gpio get 5
    """
    with _connect(port, config) as c:
        _, level, is_output = c.gpio_get(pin)
    kind = "output" if is_output else "input"
    if as_json:
        print_json({"pin": pin, "value": level, "kind": kind})
    else:
        typer.echo(f"pin {pin} ({kind}) = {level}")
