"""Helpers shared by CLI commands: one-line errors, exit codes, config loading, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ..errors import EdgeAgentError, ExitCode

if TYPE_CHECKING:
    from ..config import Config

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = ExitCode.FAILED) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn any :class:`EdgeAgentError` into one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeAgentError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(ExitCode.INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def load(config: Path | None) -> Config:
    from ..config import load_config

    return load_config(config)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()
