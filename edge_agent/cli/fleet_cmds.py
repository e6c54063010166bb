"""CLI group: fleet watch/cmd/push-update (issues 4, 5)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="fleet watch/cmd/push-update (issues 4, 5)")
