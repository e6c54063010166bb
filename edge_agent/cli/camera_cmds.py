"""CLI group: camera snapshot (issue 7)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="camera snapshot (issue 7)")
