"""Which model the agent boots with.

First version (issue #3): ``model.path`` from the config, else the shipped factory model.
The updates issue (#5) extends this with the on-disk store (active / trial / previous).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ConfigError
from ..resources import shipped_model


@dataclass(frozen=True)
class BootModel:
    """The model file to load, its description JSON (None: none beside it) and why it was
    chosen: ``config`` (model.path), ``factory`` (the shipped model), later ``store:...``."""

    path: Path
    description: Path | None
    source: str


def _description_for(model: Path, configured: Path | None) -> Path | None:
    if configured is not None:
        if not configured.is_file():
            raise ConfigError(f"model.description: {configured}: no such file")
        return configured
    beside = model.with_suffix(".json")
    return beside if beside.is_file() else None


def choose_model(config: Config) -> BootModel:
    """Pick the boot model; raises ConfigError naming the key when a configured file is missing."""
    if config.model.path is not None:
        path = config.model.path
        if not path.is_file():
            raise ConfigError(f"model.path: {path}: no such model file")
        return BootModel(path, _description_for(path, config.model.description), "config")
    path = shipped_model()
    return BootModel(path, _description_for(path, config.model.description), "factory")
