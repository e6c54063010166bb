"""Which model the agent boots with.

In order: ``model.path`` from the config (a pinned model; updates then take effect only when
it is removed), else the model store (:mod:`.store`): a trial model while it has attempts left
(the counter is decremented and persisted *before* the model is loaded, so a model that crashes
the agent runs out of attempts and the agent comes back on the active one), else the active
model if its sha256 still verifies, else the previous one, else the shipped factory model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ConfigError
from ..resources import shipped_model
from . import rollout as R
from .errors import CorruptModel, StoreError
from .state import (
    Entry,
    StoreState,
    abandon_trial,
    consume_attempt,
    drop_corrupt_active,
    set_deployment,
)
from .store import Store

log = logging.getLogger("edge_agent.updates")


@dataclass(frozen=True)
class BootModel:
    """The model file to load, its description JSON (None: none beside it) and why it was
    chosen: ``config`` (model.path), ``factory`` (the shipped model), ``store:trial``,
    ``store:active`` or ``store:previous``; ``entry`` is the store entry, if any."""

    path: Path
    description: Path | None
    source: str
    entry: Entry | None = None


def _description_for(model: Path, configured: Path | None) -> Path | None:
    if configured is not None:
        if not configured.is_file():
            raise ConfigError(f"model.description: {configured}: no such file")
        return configured
    beside = model.with_suffix(".json")
    return beside if beside.is_file() else None


def _end_trial(s: StoreState, reason: str, detail: str) -> StoreState:
    """Abandon the trial and record the deployment as rolled back (persisted by the caller)."""
    assert s.trial is not None
    d = s.deployment
    s = abandon_trial(s)
    if d is not None and not d.final and d.state in (R.ACTIVATING, R.TRIAL):
        r = R.Rollout(d)
        r.handle("error" if d.state == R.ACTIVATING else "unhealthy", reason=reason, detail=detail)
        s = set_deployment(s, r.deployment)
    return s


def from_store(store: Store) -> tuple[Entry | None, str]:
    """The store's boot entry and its source; persists every decision before returning."""
    s = store.load()
    if s.trial is not None:
        t = s.trial
        if t.attempts_left <= 0:
            log.error("trial model %s did not survive its attempts: rolling back", t.entry.label)
            s = _end_trial(
                s,
                "crash_loop",
                f"{t.entry.label} stopped the agent before its trial ended (no attempts left)",
            )
            store.save(s)
        else:
            try:
                store.verify(t.entry)
            except CorruptModel as exc:
                store.save(_end_trial(s, exc.reason, str(exc)))
                return from_store(store)
            store.save(consume_attempt(s))  # before the model is loaded
            return t.entry, "store:trial"
    source = "store:active"
    while s.active is not None:
        try:
            store.verify(s.active)
            return s.active, source
        except CorruptModel as exc:
            log.error("%s; falling back to the previous model", exc)
            s = drop_corrupt_active(s)
            store.save(s)
            source = "store:previous"
    return None, "factory"


def choose_model(config: Config) -> BootModel:
    """Pick the boot model; raises ConfigError naming the key when a configured file is missing."""
    if config.model.path is not None:
        path = config.model.path
        if not path.is_file():
            raise ConfigError(f"model.path: {path}: no such model file")
        return BootModel(path, _description_for(path, config.model.description), "config")
    store = Store.for_config(config)
    try:
        entry, source = from_store(store)
    except (StoreError, OSError) as exc:
        log.error("model store unusable (%s); booting the factory model", exc)
        entry, source = None, "factory"
    if entry is not None:
        path = store.model_path(entry)
        return BootModel(path, _description_for(path, None), source, entry)
    path = shipped_model()
    return BootModel(path, _description_for(path, config.model.description), "factory")
