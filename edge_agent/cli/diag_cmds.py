"""CLI group: diag bundle (issue 7)."""

from __future__ import annotations

from pathlib import Path

import typer

from .agent_cmds import CONFIG_HELP, resolve_config
from .common import handle_errors

app = typer.Typer(no_args_is_help=True, help="Support data: diag bundle.")


@app.command("bundle")
@handle_errors
def bundle(
    out: Path = typer.Argument(..., help="Where to write the .tar.gz"),
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="EDGE_AGENT_CONFIG", help=CONFIG_HELP
    ),
) -> None:
    """Write a support bundle: redacted config, versions, status, metrics, model store, logs,
    doctor output. Secrets from the config never enter it."""
    from ..tools.diag import write_bundle

    names = write_bundle(resolve_config(config), out)
    typer.echo(f"wrote {out} ({len(names)} files: {', '.join(names)})")
