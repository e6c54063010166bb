"""Helpers shared by CLI commands: one-line errors, exit codes, config loading, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from ..errors import ConfigError, EdgeAgentError, ExitCode
from .lookup import Found, find

if TYPE_CHECKING:
    from ..config import Config

F = TypeVar("F", bound=Callable[..., Any])


def error_name(code: int) -> str:
    """The ``error`` field of a JSON error: the exit code's name (``config``, ``model_not_found``,
    ``agent_not_running``...; the table in docs/operations.md)."""
    try:
        return ExitCode(code).name.lower()
    except ValueError:
        return "failed"


def error_json(message: str, code: int, name: str | None = None) -> dict[str, Any]:
    return {"error": name or error_name(code), "message": message, "exit_code": int(code)}


def fail(message: str, code: int = ExitCode.FAILED, *, as_json: bool = False) -> typer.Exit:
    """Print ``error: message`` on stderr (with ``--json``: the JSON error on stdout) and return
    the Exit to raise."""
    if as_json:
        print_json(error_json(message, code))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn any :class:`EdgeAgentError` into one line on stderr and its exit code; when the
    command was given ``--json`` (its ``as_json`` parameter), into one JSON error on stdout."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeAgentError as exc:
            raise fail(str(exc), exc.exit_code, as_json=bool(kwargs.get("as_json"))) from None
        except KeyboardInterrupt:
            raise typer.Exit(ExitCode.INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def load(config: Path | None) -> Config:
    """The agent config a command reads: ``-c``, ``$EDGE_AGENT_CONFIG``, the system file, or
    the defaults (:mod:`.lookup`)."""
    from ..config import load_config

    return load_config(existing(find(config)))


def existing(found: Found) -> Path | None:
    """The found file's path; a file named by the flag or the variable that is not there is a
    ConfigError saying who named it."""
    if found.path is not None and not found.path.is_file():
        what = "no such file" if not found.path.exists() else "not a regular file"
        raise ConfigError(f"config {found.path} (from {found.origin}): {what}")
    return found.path


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


JSON_OPTION = typer.Option(
    False, "--json", help="Print JSON (one object; errors too: {error, message, exit_code})."
)
