"""CLI group: config validate / show / schema."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import handle_errors

app = typer.Typer(no_args_is_help=True, help="Validate and show the agent's configuration.")


@app.command("validate")
@handle_errors
def validate(file: Path = typer.Argument(..., help="TOML config file")) -> None:
    """Check a config file; exit 2 with the key and line on error (warnings go to stderr)."""
    from ..config import load_config

    cfg = load_config(file)
    for line in cfg.warnings:
        typer.echo(f"warning: {line}", err=True)
    typer.echo(f"{file}: OK")


@app.command("show")
@handle_errors
def show(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML config file"),
) -> None:
    """Print the effective config (file + EDGE_AGENT_* overrides), secrets redacted."""
    from ..config import load_config, redacted

    typer.echo(json.dumps(redacted(load_config(config)), indent=2))


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the config file."""
    from ..config import Config

    typer.echo(json.dumps(Config.model_json_schema(), indent=2))
