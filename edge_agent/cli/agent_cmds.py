"""CLI: edge-agent run / status / doctor (issues 3, 7)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import typer

from ..config import Config
from .common import handle_errors, load


def _setup_logging(cfg: Config) -> None:
    fmt = (
        '{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'
        if cfg.logging.format == "json"
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.basicConfig(level=cfg.logging.level, format=fmt, stream=sys.stderr, force=True)


def run_agent(config: Path | None, duration: float | None, frames: int | None) -> dict[str, Any]:
    """Load config, build the Agent, run it, print the final summary; returns the summary.

    Summary lines go to stdout, or to stderr when results are printed as JSON lines on stdout.
    """
    from ..console import ConsoleReporter
    from ..service import Agent
    from ..telemetry import final_summary

    cfg = load(config)
    _setup_logging(cfg)
    out = sys.stderr if cfg.pipeline.stdout_jsonl else sys.stdout
    agent = Agent(cfg)
    agent.build(frames=frames)
    agent.add_component(ConsoleReporter(out))
    summary = agent.run(duration=duration, frames=frames)
    first = summary["first_result_s"]
    out.write(
        final_summary(summary["latency_ms"], summary["counters"], summary["seconds"])
        + f" | first result {'-' if first is None else f'{first:.2f}'} s"
        + f" | stop: {summary['reason']}\n"
    )
    out.flush()
    return summary


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""

    @app.command("run")
    @handle_errors
    def run(
        config: Path | None = typer.Option(
            None, "--config", "-c", help="TOML config file (default: embedded defaults)."
        ),
        duration: float | None = typer.Option(
            None, "--duration", min=0.0, help="Stop after this many seconds."
        ),
        frames: int | None = typer.Option(
            None, "--frames", min=1, help="Stop after this many processed frames."
        ),
    ) -> None:
        """Run the agent: camera -> model -> metrics, until Ctrl-C / SIGTERM."""
        run_agent(config, duration, frames)
