"""CLI group: diag bundle (issue 7)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="diag bundle (issue 7)")
