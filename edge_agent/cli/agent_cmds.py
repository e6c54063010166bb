"""CLI: edge-agent run / status / doctor (issues 3, 7)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from .common import existing, handle_errors, load, print_json
from .lookup import CONFIG, find

if TYPE_CHECKING:
    from ..config import Config


def _setup_logging(cfg: Config) -> None:
    from ..ops import logging_setup

    logging_setup.apply_config(cfg)
    for line in cfg.warnings:
        logging.getLogger("edge_agent.config").warning("%s", line)


def run_agent(
    config: Path | None,
    duration: float | None,
    frames: int | None,
    labels: Path | None = None,
    *,
    model: Path | None = None,
    source: str | None = None,
    as_json: bool = False,
) -> dict[str, Any]:
    """Load config, build the Agent, run it, print the final summary; returns the summary.

    Summary lines go to stdout, or to stderr when results are printed as JSON lines on stdout
    (or with ``as_json``: the summary is one JSON object on stdout, the lines go to stderr).
    ``labels`` replaces the config's ``model.labels``; ``model`` and ``source`` are set as the
    environment overrides ``EDGE_AGENT_MODEL__PATH`` / ``EDGE_AGENT_CAMERA__SOURCE`` of this
    process, so they are validated like the file and survive a reload.
    """
    import os

    from ..ops.stderr_relay import StderrRelay

    if model is not None:
        os.environ["EDGE_AGENT_MODEL__PATH"] = str(model.absolute())
    if source is not None:
        os.environ["EDGE_AGENT_CAMERA__SOURCE"] = source
    path = existing(find(config))
    cfg = load(path)
    if labels is not None:
        cfg.model.labels = labels
    _setup_logging(cfg)
    with StderrRelay():  # FFmpeg's/OpenCV's own fd-2 lines -> the log, throttled
        return _run_agent(cfg, path, duration, frames, as_json)


def _run_agent(
    cfg: Config, config: Path | None, duration: float | None, frames: int | None,
    as_json: bool = False,
) -> dict[str, Any]:
    from ..agent.console import ConsoleReporter
    from ..app import build_agent
    from ..telemetry import final_summary

    out = sys.stderr if cfg.pipeline.stdout_jsonl or as_json else sys.stdout
    agent = build_agent(cfg, config_path=config, frames=frames, first=[ConsoleReporter(out)])
    summary = agent.run(duration=duration, frames=frames)
    if as_json:
        print_json(summary)
        return summary
    first = summary["first_result_s"]
    out.write(
        final_summary(summary["latency_ms"], summary["counters"], summary["seconds"])
        + f" | first result {'-' if first is None else f'{first:.2f}'} s after process start"
        + f" | stop: {summary['reason']} in {summary['shutdown_s']:.2f} s"
        + f" | threads left {len(summary['threads_left'])}\n"
    )
    out.flush()
    return summary


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""

    @app.command("run")
    @handle_errors
    def run(
        config: Path | None = CONFIG,
        duration: float | None = typer.Option(
            None, "--duration", min=0.0, help="Stop after this many seconds."
        ),
        frames: int | None = typer.Option(
            None, "--frames", min=1, help="Stop after this many processed frames."
        ),
        labels: Path | None = typer.Option(
            None, "--labels", help="Labels file (one per line, or `ID name`); replaces "
            "model.labels and the model's own labels."
        ),
        model: Path | None = typer.Option(
            None, "--model", "-m", help="Model file; replaces the config's model.path."
        ),
        source: str | None = typer.Option(
            None, "--source", "-s", help="Frames: camera index (0), /dev/videoN, video file, "
            "image or folder, rtsp:// URL, demo, synthetic; replaces camera.source."
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print the final summary as one JSON object (the interval "
            "lines go to stderr)."
        ),
    ) -> None:
        """Run the agent: camera -> model -> metrics, until Ctrl-C / SIGTERM.

        Example: edge-agent run --model models/digits_int8.tflite --source demo --duration 10
        """
        run_agent(config, duration, frames, labels, model=model, source=source, as_json=as_json)

    app.command("status")(status)
    app.command("doctor")(doctor)


@handle_errors
def status(
    config: Path | None = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print the status record as JSON."),
) -> None:
    """The running agent's status (through its control socket); else the last persisted one.

    Exit 0 when the agent answers, 30 when it is not running.

    Example: edge-agent status --json
    """
    from ..errors import AgentNotRunning, ControlError
    from ..ops.control import read_persisted, request
    from ..ops.status import render

    cfg = load(config)
    try:
        record = request(cfg.control_socket, "status")
        running = True
    except AgentNotRunning as exc:
        running = False
        reason = str(exc)
        try:
            record = read_persisted(cfg.device.state_dir) or {}
        except ControlError as damaged:  # not running, and its last status is unreadable
            typer.echo(f"agent: not running; last status unknown: {damaged}", err=True)
            raise typer.Exit(AgentNotRunning.exit_code) from None
    if as_json:
        print_json({"running": running, **record})
    elif running:
        typer.echo(render(record, running=True))
    elif record:
        typer.echo(render(record, running=False))
    else:
        typer.echo(f"agent: not running, never ran with state_dir {cfg.device.state_dir}")
    if not running:
        typer.echo(reason, err=True)
        raise typer.Exit(AgentNotRunning.exit_code)


@handle_errors
def doctor(
    config: Path | None = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check config, model sha256, backend/delegates, camera, broker, registry, clock, disk, serial.

    Each check prints PASS / WARN / FAIL / SKIP with a one-line fix; exit 1 if any FAILs.

    Example: edge-agent doctor -c /etc/edge-agent/agent.toml
    """
    from ..tools import doctor as doc

    results = doc.run(find(config).path)  # a missing file is its first FAIL
    if as_json:
        print_json(doc.to_json(results))
    else:
        typer.echo(doc.render(results))
    if doc.failed(results):
        raise typer.Exit(1)
