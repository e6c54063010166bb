"""CLI group: camera snapshot (issue 7)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import handle_errors, load, print_json
from .lookup import CONFIG

app = typer.Typer(no_args_is_help=True, help="Camera tools: list, snapshot.")


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


@app.command("list")
@handle_errors
def list_cmd(
    config: Path | None = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print the cameras as one JSON object."),
) -> None:
    """The V4L2 cameras (/dev/videoN) with their formats and frame sizes, and which one the
    config's camera.source names.

    Example: edge-agent camera list
    """
    from ..camera.v4l2 import list_cameras

    source = load(config).camera.source
    cams = list_cameras()
    if as_json:
        print_json({"source": source, "cameras": [c.to_json() for c in cams]})
        return
    if not cams:
        typer.echo("no V4L2 camera (/dev/video*): plug one in; camera.source "
                   f"{source!r} is what the agent reads")
        return
    for c in cams:
        used = "  <- camera.source" if source in (c.path, c.path.removeprefix("/dev/video")) else ""
        if c.error:
            typer.echo(f"{c.path}: {c.error}{used}")
            continue
        kind = "capture" if c.capture else "not a capture node (metadata/codec)"
        typer.echo(f"{c.path}: {c.name} ({c.driver}, {c.bus}), {kind}{used}")
        for f in c.formats:
            sizes = " ".join(f["sizes"]) or "-"
            typer.echo(f"    {f['fourcc']:<4} {f['description']}: {sizes}")
