"""CLI: ``edge-agent logs`` — the agent's recent log lines, from the running agent's control
socket (its last 1000 lines in memory); when it is not running, from journald (the unit
``edge-agent``) when ``journalctl`` is there. ``--follow`` keeps printing new lines."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import typer

from .common import JSON_OPTION, handle_errors, load, print_json
from .lookup import CONFIG

UNIT = "edge-agent"
FOLLOW_POLL_S = 1.0


def new_lines(printed: list[str], now: list[str]) -> list[str]:
    """The lines of ``now`` after the last one already printed (all of them when the window
    moved past it). Lines carry their time, so a repeat of the very same line is rare."""
    if not printed:
        return now
    last = printed[-1]
    for i in range(len(now) - 1, -1, -1):
        if now[i] == last:
            return now[i + 1:]
    return now


@handle_errors
def logs(
    lines: int = typer.Option(50, "--lines", "-n", min=1, max=1000, help="Lines to show"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines "
                                "(Ctrl-C stops)"),
    config: Path | None = CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """The agent's recent log lines: from the running agent, else from journald.

    Exit 30 when the agent is not running and journald has nothing (no journalctl).

    Example: edge-agent logs -n 100 --follow
    """
    from ..errors import AgentNotRunning
    from ..ops.control import request

    cfg = load(config)
    try:
        got = request(cfg.control_socket, "logs", lines=lines).get("lines") or []
    except AgentNotRunning as exc:
        journalctl = shutil.which("journalctl")
        if not Path("/run/systemd/system").is_dir():  # systemd is not what runs this machine
            journalctl = None
        if journalctl is None or as_json:
            raise AgentNotRunning(f"{exc}; no journald to read instead" if journalctl is None
                                  else f"{exc}; read journald: journalctl -u {UNIT}") from None
        cmd = [journalctl, "-u", UNIT, "-n", str(lines), "--no-pager", "-o", "cat"]
        raise typer.Exit(subprocess.call(cmd + (["-f"] if follow else []))) from None
    _show(got, as_json, follow)
    printed = list(got)
    while follow:
        time.sleep(FOLLOW_POLL_S)
        try:
            now = request(cfg.control_socket, "logs", lines=1000).get("lines") or []
        except AgentNotRunning:
            typer.echo("agent stopped", err=True)
            raise typer.Exit(AgentNotRunning.exit_code) from None
        fresh = new_lines(printed, now)
        for line in fresh:
            _show([line], as_json, True)
        printed = now


def _show(lines: list[str], as_json: bool, stream: bool) -> None:
    if as_json and not stream:
        print_json({"lines": lines})
        return
    for line in lines:
        if as_json:
            print_json({"line": line})
        else:
            typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)
