"""The one way the agent loads a model into a Runner: at boot, for an update's swap, for a rollback.

``[model]`` says how every model runs on this device: interpreter threads, delegates, backend,
and the decoder overrides (``decoder``, ``threshold``, ``top_k``, ``labels``) applied over the
model's own description. Loading a new model through :class:`RunnerLoader` keeps them, so a
model behaves the same after a hot swap or a rollback as it did at boot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config, ModelConfig
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..inference import Runner


def read_labels(path: Path | None) -> list[str] | None:
    """``model.labels``: one label per line, or ``ID name`` / ``ID: name`` lines."""
    if path is None:
        return None
    from ..errors import DescriptionError
    from ..inference.labels import read_labels as read

    try:
        return read(path)
    except DescriptionError as exc:
        raise ConfigError(f"model.labels: {exc}") from None


class RunnerLoader:
    """Loads ``path`` (with ``description``, else ``<model>.json`` beside it, else one guessed
    from the tensors) with the config's runtime settings and decoder overrides. The labels file
    is read once, here: a bad ``model.labels`` fails at start with its ConfigError."""

    def __init__(self, config: Config | ModelConfig) -> None:
        self.model: ModelConfig = config.model if isinstance(config, Config) else config
        self.labels = read_labels(self.model.labels)

    def __call__(
        self,
        path: Path,
        description: Path | None = None,
        *,
        warmup: int = 1,
        threads: int | None = None,
    ) -> Runner:
        """``threads``: instead of ``[model] threads`` (a shadow candidate runs on one)."""
        from ..inference import Runner

        m = self.model
        return Runner.open(
            path,
            threads=m.threads if threads is None else threads,
            delegates=m.delegates,
            backend=m.backend,
            accelerators=m.accelerator,
            description=description,
            decoder=m.decoder,
            threshold=m.threshold,
            top_k=m.top_k,
            labels=self.labels,
            warmup=warmup,
        )

    def factory(self, path: Path, description: Path | None = None) -> Callable[[], Runner]:
        """A function that loads a fresh Runner of ``path`` each call (one interpreter each)."""
        return lambda: self(path, description)
