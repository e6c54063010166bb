"""CLI group: registry keygen/publish (issue 5)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="registry keygen/publish (issue 5)")
