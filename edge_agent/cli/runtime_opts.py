"""Options shared by infer, bench and models inspect: which runtime, threads and delegates.

Flags win; what a flag leaves unset comes from the config file's ``[model]`` section
(``threads``, ``backend``, ``delegates``) — so a technician sees what the agent would run —
and else the defaults (1 thread, auto backend, CPU only). The config's model path and
description are not used here: these commands take the model on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .common import existing, load
from .lookup import find

if TYPE_CHECKING:
    from ..inference.model import Delegate

THREADS = typer.Option(
    None, "--threads", min=1, max=64, help="Interpreter threads [default: config, else 1]"
)
def _backend_name(value: str | None) -> str | None:
    """An unknown backend is a usage error (exit 2), named with the choices."""
    choices = ("auto", "litert", "tflite_runtime", "tensorflow")
    if value is not None and value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
    return value


BACKEND = typer.Option(
    None,
    "--backend",
    metavar="[auto|litert|tflite_runtime|tensorflow]",
    callback=_backend_name,
    help="auto | litert | tflite_runtime | tensorflow [default: config, else auto]",
)
ACCELERATORS = typer.Option(
    [],
    "--accelerator",
    help="LiteRT CompiledModel accelerator to try: npu | gpu | cpu (repeatable, in order) "
    "[default: the config's model.accelerator, else the Interpreter]",
)
DELEGATES = typer.Option(
    [],
    "--delegate",
    help="Delegate library to try (repeatable, in order; CPU is the fallback) "
    "[default: the config's delegate chain]",
)


@dataclass
class RuntimeOptions:
    threads: int = 1
    backend: str = "auto"
    delegates: list[Delegate] = field(default_factory=list)
    accelerators: list[str] = field(default_factory=list)


def runtime_options(
    config: Path | None,
    threads: int | None,
    backend: str | None,
    delegates: list[str],
    accelerators: list[str] | None = None,
) -> RuntimeOptions:
    """Merge flags over the config's ``[model]`` runtime settings."""
    from ..inference.model import Delegate

    path = existing(find(config))
    opts = RuntimeOptions()
    if path is not None:
        cfg = load(path).model
        opts = RuntimeOptions(
            cfg.threads,
            cfg.backend,
            [Delegate(d.library, dict(d.options)) for d in cfg.delegates],
            list(cfg.accelerator),
        )
    if threads is not None:
        opts.threads = threads
    if backend is not None:
        opts.backend = backend
    if delegates:
        opts.delegates = [Delegate(lib) for lib in delegates]
    if accelerators:
        opts.accelerators = list(accelerators)
    return opts
