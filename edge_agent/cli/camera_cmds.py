"""CLI group: camera snapshot (issue 7)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import handle_errors, load, print_json
from .lookup import CONFIG

app = typer.Typer(no_args_is_help=True, help="Camera tools: snapshot.")


@app.command("snapshot")
@handle_errors
def snapshot(
    out: Path = typer.Argument(..., help="JPEG file to write, or a folder (a new "
                             "snapshot-DATE-TIME.jpg in it)"),
    annotate: bool = typer.Option(False, "--annotate", help="Draw the model's detections."),
    config: Path | None = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print what was taken as JSON."),
) -> None:
    """Write one camera frame as JPEG (from the running agent if there is one).

    Example: edge-agent camera snapshot /tmp/frame.jpg --annotate
    """
    from ..tools.snapshot import take

    info = take(load(config), out, annotated=annotate)
    if as_json:
        print_json(info)
    else:
        typer.echo(f"wrote {info['path']} ({info['width']}x{info['height']}, from the "
                   f"{info['from']})")
