"""CLI group: config validate / show / schema."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import JSON_OPTION, existing, handle_errors, print_json
from .lookup import CONFIG, find

app = typer.Typer(no_args_is_help=True, help="Validate and show the agent's configuration.")


@app.command("validate")
@handle_errors
def validate(
    file: Path = typer.Argument(..., metavar="FILE", help="TOML config file to check"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a config file; exit 2 with the key and line on error (warnings go to stderr).

    Example: edge-agent config validate /etc/edge-agent/agent.toml
    """
    from ..config import load_config

    cfg = load_config(file)
    if as_json:
        print_json({"file": str(file), "ok": True, "warnings": cfg.warnings})
        return
    for line in cfg.warnings:
        typer.echo(f"warning: {line}", err=True)
    typer.echo(f"{file}: OK")


@app.command("show")
@handle_errors
def show(config: Path | None = CONFIG, as_json: bool = JSON_OPTION) -> None:
    """Print the effective config (file + EDGE_AGENT_* overrides), secrets redacted, and say
    which file it came from (on stderr; with --json in the object).

    Example: EDGE_AGENT_CONFIG=agent.toml edge-agent config show
    """
    from ..config import load_config, redacted

    found = find(config)
    data = redacted(load_config(existing(found)))
    if as_json:
        print_json({"source": found.to_json(), "config": data})
        return
    typer.echo(f"config: {found.describe()}", err=True)
    typer.echo(json.dumps(data, indent=2))


@app.command("schema")
def schema(
    as_json: bool = typer.Option(False, "--json", help="Accepted for uniformity: it is JSON."),
) -> None:
    """Print the JSON Schema of the config file (it is JSON already).

    Example: edge-agent config schema > agent.schema.json
    """
    from ..config import Config

    schema = Config.model_json_schema()
    if as_json:
        print_json(schema)
    else:
        typer.echo(json.dumps(schema, indent=2))
