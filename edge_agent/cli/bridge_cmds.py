"""CLI group: bridge ping/info/telemetry/watch/gpio (issue 6)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="bridge ping/info/telemetry/watch/gpio (issue 6)")
