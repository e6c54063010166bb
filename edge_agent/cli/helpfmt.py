"""Readable help for every command, applied once to the whole command tree.

Typer labels values with Python types (``<str>``, ``<int range>``, ``<list[Path]>``) and writes
required arguments as ``{model}`` in the usage line. :func:`tidy` gives each option that takes a
value a metavar (TEXT, PATH, INTEGER, NUMBER, or its choices) unless the command set one, and
each argument an upper-case name (``MODEL``, ``IMAGES...``) without a type label. It relies on
typer's parameter classes (the tested range is pinned in pyproject.toml; the CLI walk test,
tests/unit/test_cli_walk.py, fails if the labels come back).
"""

from __future__ import annotations

from typing import Any

import typer

LABELS = {
    "<str>": "TEXT",
    "<path>": "PATH",
    "<int>": "INTEGER",
    "<int range>": "INTEGER",
    "<float>": "NUMBER",
    "<float range>": "NUMBER",
    "<list[str]>": "TEXT",
    "<list[Path]>": "PATH",
}


def walk(command: Any, path: tuple[str, ...] = ()) -> Any:
    """(path, command) for the command and every subcommand, depth first."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


def _argument_class(base: type) -> type:
    class ReadableArgument(base):
        def _usage_display_name(self) -> str:
            name = self.display_name_raw
            more = "..." if self.nargs != 1 else ""
            return f"{name}{more}" if self.required else f"[{name}{more}]"

        def _rich_display_name(self) -> str:
            return str(self.display_name_raw) + ("..." if self.nargs != 1 else "")

        def display_type_rich(self, ctx: Any) -> str | None:
            return None

    return ReadableArgument


_classes: dict[type, type] = {}


def tidy(root: Any) -> Any:
    """Give every parameter of every command a readable label; returns ``root``."""
    for _path, command in walk(root):
        ctx = typer.Context(command)
        for p in getattr(command, "params", []):
            if p.param_type_name == "argument":
                if p.metavar is None:
                    p.metavar = (p.name or "value").upper()
                cls = type(p)
                if cls not in _classes.values():
                    p.__class__ = _classes.setdefault(cls, _argument_class(cls))
            elif p.param_type_name == "option" and not getattr(p, "is_flag", False):
                if p.metavar is None and hasattr(p, "display_type"):
                    label = p.display_type(ctx)
                    p.metavar = LABELS.get(label) or label.strip("<>").upper()
    return root
