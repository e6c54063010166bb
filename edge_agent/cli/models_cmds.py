"""CLI group: models inspect/list/activate/rollback/verify/gc (issues 2, 5)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Inspect, list and manage models.")
