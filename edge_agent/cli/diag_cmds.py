"""CLI group: diag bundle (issue 7)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import JSON_OPTION, handle_errors, print_json
from .lookup import CONFIG, find

app = typer.Typer(no_args_is_help=True, help="Support data: diag bundle.")


@app.command("bundle")
@handle_errors
def bundle(
    out: Path = typer.Argument(..., help="Where to write the .tar.gz"),
    config: Path | None = CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a support bundle: redacted config, versions, status, metrics, model store, logs,
    doctor output. Secrets from the config never enter it.

    Example: edge-agent diag bundle /tmp/support.tar.gz
    """
    from ..tools.diag import write_bundle

    names = write_bundle(find(config).path, out)
    if as_json:
        print_json({"path": str(out), "files": names})
        return
    typer.echo(f"wrote {out} ({len(names)} files: {', '.join(names)})")
