"""systemd notification protocol: READY, STATUS, a progress-gated WATCHDOG, STOPPING.

- :class:`Notifier` is the I/O adapter: datagrams to ``$NOTIFY_SOCKET`` (path or ``@abstract``).
- :class:`NotifyPlan` is the pure logic: fed the agent's progress counter
  (``Agent.progress``) at each check, it says which messages to send. The counter moves with
  every processed frame and, while the camera reader waits for a camera that is not there yet
  (opening it or backing off, each step within its time budget), at every check. ``READY=1``
  on its first move: the first frame went through the model, or every component is up and
  the agent waits for its camera (the model is loaded at build either way). ``WATCHDOG=1``
  only when the counter moved since the previous check, so a stalled pipeline or a stuck
  camera reader stops the pings and systemd restarts the agent; a missing camera does not.
  ``STATUS=`` says ``camera reconnecting: <why>`` while it waits.
- :class:`SdNotifyComponent` runs the checks on a thread (every third of ``WATCHDOG_USEC``,
  or every second without a watchdog) and sends ``STOPPING=1`` first thing at shutdown.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ..component import Component

log = logging.getLogger(__name__)

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Sends ``KEY=VALUE`` lines to the service manager; does nothing without NOTIFY_SOCKET."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None
        if self.address:
            target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
            self._target = target
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        if self._sock is None or not fields:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode("utf-8"), self._target)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog period systemd asked for, or None (unset, invalid, or for another pid)."""
    usec = environ.get("WATCHDOG_USEC", "")
    wpid = environ.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if wpid and wpid.strip() != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


def take_environment(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Read and remove the notify variables so child processes (preflight) do not inherit them."""
    return {k: environ.pop(k) for k in _ENV_KEYS if k in environ}


@dataclass
class NotifyPlan:
    """Pure: from (processed count, status text) to the messages to send now."""

    ready: bool = False
    last_processed: int = 0
    last_status: str = ""
    pings: int = 0
    _history: list[tuple[float, int]] = field(default_factory=list)

    def step(self, processed: int, status: str = "") -> list[str]:
        msgs: list[str] = []
        progressed = processed > self.last_processed
        self.last_processed = max(self.last_processed, processed)
        if progressed and not self.ready:
            self.ready = True
            msgs.append("READY=1")
        if status and status != self.last_status:
            self.last_status = status
            msgs.append(f"STATUS={status}")
        if progressed and self.ready:
            self.pings += 1
            msgs.append("WATCHDOG=1")
        return msgs

    def fps(self, now: float, processed: int, window_s: float = 10.0) -> float:
        """Processed frames per second over the last ``window_s`` of checks."""
        self._history.append((now, processed))
        while len(self._history) > 2 and now - self._history[1][0] >= window_s:
            self._history.pop(0)
        t0, n0 = self._history[0]
        return (processed - n0) / (now - t0) if now > t0 else 0.0


def status_line(fps: float, model: str, extra: str = "") -> str:
    text = f"{fps:.1f} fps, model {model}"
    return f"{text}, {extra}" if extra else text


class SdNotifyComponent(Component):
    """Tells systemd when the agent is ready, how it does, and that it still makes progress."""

    name = "sdnotify"

    def __init__(
        self,
        environ: MutableMapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = take_environment(os.environ if environ is None else environ)
        self.notifier = Notifier(env.get("NOTIFY_SOCKET"))
        self.watchdog_s = watchdog_interval_s(env, os.getpid())
        self.plan = NotifyPlan()
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._agent: Any = None

    @property
    def period_s(self) -> float:
        return min(1.0, self.watchdog_s / 3) if self.watchdog_s else 1.0

    def start(self, agent: Any) -> None:
        if not self.notifier.enabled:
            return
        from .agent_view import AgentView

        self._agent = AgentView(agent)
        log.info(
            "sd_notify on %s, watchdog %s",
            self.notifier.address,
            f"{self.watchdog_s:g} s" if self.watchdog_s else "off",
        )
        self._thread = threading.Thread(target=self._loop, name="sdnotify", daemon=True)
        self._thread.start()

    def check(self) -> list[str]:
        """One check: read the counter, send what the plan says. Returns what was sent."""
        view = self._agent
        processed = view.processed()
        now = self._clock()
        fps = self.plan.fps(now, processed)
        camera = view.camera()
        extra = ""
        if camera.get("health") in ("reconnecting", "failed", "starting"):
            why = camera.get("last_error") or "not open yet"
            extra = f"camera {camera.get('health')}: {why}"
        msgs = self.plan.step(view.progress(), status_line(fps, view.model_label(), extra))
        if msgs:
            self.notifier.send(*msgs)
        return msgs

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # never let a reporting error kill the watchdog thread silently
                log.exception("sd_notify check failed")
            # quick checks until READY so systemd learns it promptly
            self._stop.wait(0.1 if not self.plan.ready else self.period_s)

    def stop(self) -> None:
        self._stop.set()
        if self.notifier.enabled:
            self.notifier.send("STOPPING=1", "STATUS=stopping")
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.notifier.close()
