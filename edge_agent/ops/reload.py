"""SIGHUP: re-read the config file, apply what can change live, log what needs a restart.

:func:`plan_reload` (pure) compares two configs key by key. Applied live: ``[logging]`` (level,
format). Everything else that changed is named in one log line saying a restart applies it. A
config that no longer loads is refused with its one-line error; the agent keeps the config it
runs with.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from ..common.changes import changed_keys
from ..component import Component
from ..config import Config, load_config
from ..errors import ConfigError
from . import logging_setup

log = logging.getLogger(__name__)

LIVE_PREFIXES = ("logging.",)


@dataclass
class ReloadPlan:
    live: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Which changed keys apply live, which need a restart (secrets compared, never shown)."""
    plan = ReloadPlan()
    for key in changed_keys(old, new):
        (plan.live if key.startswith(LIVE_PREFIXES) else plan.restart).append(key)
    return plan


class ReloadComponent(Component):
    """Installs the SIGHUP handler (main thread only); reloads on a worker thread."""

    name = "reload"

    def __init__(self) -> None:
        self._agent: Any = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: Any = None
        self.reloads = 0

    def start(self, agent: Any) -> None:
        self._agent = agent
        if threading.current_thread() is not threading.main_thread():
            log.debug("not on the main thread: SIGHUP reload not installed")
            return
        self._previous = signal.signal(signal.SIGHUP, self._on_signal)
        self._thread = threading.Thread(target=self._loop, name="reload", daemon=True)
        self._thread.start()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.reload()
            except Exception:  # a reload must never take the agent down
                log.exception("config reload failed; keeping the running config")

    def reload_live(self) -> list[str]:
        """Reload the file; the keys applied live (what MQTT's ``reload`` command reports)."""
        plan = self.reload()
        return plan.live if plan is not None else []

    def reload(self) -> ReloadPlan | None:
        cfg: Config = self._agent.config
        source = cfg.source
        try:
            new = load_config(source)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return None
        plan = plan_reload(cfg, new)
        self.reloads += 1
        if plan.live:
            cfg.logging = new.logging
            logging_setup.apply_config(cfg)
        if plan.restart:
            log.warning(
                "reloaded %s: applied %s; restart to apply %s",
                source or "<defaults>",
                ", ".join(plan.live) or "nothing",
                ", ".join(plan.restart),
            )
        else:
            log.info(
                "reloaded %s: applied %s", source or "<defaults>", ", ".join(plan.live) or "nothing"
            )
        return plan

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._previous is not None:
            try:
                signal.signal(signal.SIGHUP, self._previous)
            except ValueError:  # pragma: no cover - stop() called off the main thread
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)
