"""Root of the ``edge-agent`` command. Each command group lives in its own module.

The command modules import only typer at the top; what a command needs (numpy, OpenCV,
pydantic, paho...) is imported when it runs, so ``--help`` and ``--version`` start fast
(``benchmarks/cli_startup.py``).
"""

from __future__ import annotations

from typing import Any

import typer

from .. import __version__
from ..errors import ExitCode
from . import (
    agent_cmds,
    bench_cmd,
    bridge_cmds,
    camera_cmds,
    config_cmds,
    diag_cmds,
    fleet_cmds,
    fleet_service_cmds,  # noqa: F401  (adds serve, status, rollout to fleet)
    infer_cmd,
    logs_cmd,
    models_cmds,
    registry_cmds,
)
from .common import error_json, print_json

app = typer.Typer(
    name="edge-agent",
    help="Run quantized LiteRT models on camera frames; report, update and diagnose.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: rich's help renderer alone costs ~0.1 s per --help
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edge-agent {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    log_format: str | None = typer.Option(
        None, "--log-format", help="human | json (JSON lines). Wins over [logging] format."
    ),
    log_level: str | None = typer.Option(
        None, "--log-level", help="DEBUG | INFO | WARNING | ERROR. Wins over [logging] level."
    ),
) -> None:
    """edge-agent: inference, telemetry, updates and diagnostics for edge devices."""
    from ..ops import logging_setup  # here, not at import: --help and --version stay light

    try:
        logging_setup.set_cli_overrides(log_format, log_level)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


# top-level commands
infer_cmd.register(app)
bench_cmd.register(app)
agent_cmds.register(app)
logs_cmd.register(app)
# command groups
app.add_typer(models_cmds.app, name="models")
app.add_typer(config_cmds.app, name="config")
app.add_typer(camera_cmds.app, name="camera")
app.add_typer(bridge_cmds.app, name="bridge")
app.add_typer(fleet_cmds.app, name="fleet")
app.add_typer(registry_cmds.app, name="registry")
app.add_typer(diag_cmds.app, name="diag")


def build_command() -> Any:
    """The click command tree of the CLI, with readable help labels (:mod:`.helpfmt`)."""
    from .helpfmt import tidy

    return tidy(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Usage errors exit 2; with ``--json`` they are a JSON error on stdout like
    every other error (``{"error": "usage", "message": ..., "exit_code": 2}``)."""
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    command = build_command()
    try:
        code = command.main(args=args, prog_name="edge-agent", standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        code = ExitCode.INTERRUPTED
    except typer.TyperException as exc:  # click's usage errors (bad option, missing argument)
        code = getattr(exc, "exit_code", ExitCode.CONFIG)
        if "--json" in args:
            print_json(error_json(exc.format_message(), code, "usage"))
        else:
            exc.show()  # type: ignore[attr-defined]
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


if __name__ == "__main__":
    main()
