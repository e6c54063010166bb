"""Command dispatch: network thread -> bounded queue -> worker thread -> handler -> reply.

Malformed, oversized, expired or unknown commands get an error reply and change nothing. The
reply of every command that ran (ok or failed) is remembered with its ``id`` (in memory and
on disk); a repeated ``id`` is answered from memory with ``"repeat": true``, not run again.
Expensive commands (``limits``: name -> token bucket) beyond their rate get ``rate_limited``.
Refusals are logged once per code and interval, with a count (a flood is not a log flood).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..common.throttle import ThrottledLog
from . import commands as cmds
from .errors import CommandError, OutboxError
from .events import TokenBucket
from .link import Incoming
from .outbox import Outbox
from .topics import Topics

log = logging.getLogger("edge_agent.mqtt")

Reply = Callable[[Incoming, str, dict[str, Any]], None]
NOT_RUN = ("invalid_params", "unknown_command")  # refused before the handler: not remembered
REFUSAL_LOG_EVERY_S = 60.0


class CommandDispatcher:
    def __init__(
        self,
        registry: cmds.Registry,
        *,
        device: str,
        topics: Topics,
        store: Outbox,
        reply: Reply,
        max_bytes: Callable[[], int],
        queue_size: int = 16,
        recent: int = 256,
        counters: collections.Counter[str] | None = None,
        limits: dict[str, TokenBucket] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.device = device
        self.topics = topics
        self.store = store
        self.reply = reply
        self.max_bytes = max_bytes
        self.counters = counters if counters is not None else collections.Counter()
        self.recent = cmds.RecentReplies(max_items=recent)
        self.load_replies()
        self.limits = dict(limits or {})
        self.clock = clock
        self.refusals = RefusalLog(clock)
        # None: the wake-up of stop (the worker blocks on the queue, it does not poll)
        self._queue: queue.Queue[Incoming | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load_replies(self) -> None:
        """Remember the replies kept on disk (again once an outbox that was not open opens)."""
        before = self.store.replies_damaged
        for rid, ts, body in self.store.load_replies():
            if self.recent.get(rid, ts) is None:
                self.recent.put(rid, body, ts)
        if self.store.replies_damaged > before:  # logged by the outbox, naming its file
            self.counters["replies_damaged"] += self.store.replies_damaged - before

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="mqtt-commands", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # the worker is busy: it sees the stop before it takes the next command
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.refusals.flush()

    def _error(self, rid: str | None, name: str, code: str, message: str) -> dict[str, Any]:
        return cmds.error_reply(rid, name, self.device, code, message)

    # -- network thread --------------------------------------------------------------------
    def on_message(self, msg: Incoming) -> None:
        """Queue the command; answer at once (without queueing it) if it is too big or the
        queue is full."""
        name = self.topics.command_name(msg.topic)
        if name is None:
            return
        limit = self.max_bytes()
        if len(msg.payload) > limit:
            self.counters["commands_invalid"] += 1
            size = len(msg.payload)
            self.reply(
                msg,
                name,
                self._error(
                    None,
                    name,
                    "too_large",
                    f"command payload is {size} bytes; the limit is {limit}",
                ),
            )
            return
        try:
            self._queue.put_nowait(msg)
        except queue.Full:
            self.counters["commands_busy"] += 1
            self.reply(
                msg,
                name,
                self._error(
                    cmds.request_id_of(msg.payload, limit),
                    name,
                    "busy",
                    f"{self._queue.maxsize} commands are waiting; retry later",
                ),
            )

    # -- worker thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            msg = self._queue.get()
            if msg is None:  # stop's wake-up (or an old one, after a restart)
                continue
            try:
                self.run(msg)
            except Exception as exc:  # a bug here must not stop the next commands
                self.counters["commands_errors"] += 1
                log.exception("MQTT command error on %s", msg.topic)
                name = self.topics.command_name(msg.topic) or "?"
                try:
                    self.reply(msg, name, self._error(
                        None, name, "failed", f"internal error: {type(exc).__name__}: {exc}"))
                except Exception:
                    log.exception("MQTT: cannot reply on %s", msg.topic)

    def run(self, msg: Incoming) -> None:
        name = self.topics.command_name(msg.topic) or "?"
        limit = self.max_bytes()
        try:
            req = cmds.parse_request(msg.payload, limit)
        except CommandError as err:
            self.counters["commands_expired" if err.code == "expired" else "commands_invalid"] += 1
            self.refusals.note(name, err.code, err.message)
            rid = cmds.request_id_of(msg.payload, limit)
            self.reply(msg, name, self._error(rid, name, err.code, err.message))
            return
        now = time.time()
        cached = self.recent.get(req.id, now)
        if cached is not None:
            self.counters["commands_repeated"] += 1
            self.reply(msg, name, {**cached, "repeat": True})
            return
        bucket = self.limits.get(name)
        if bucket is not None and not bucket.allow(self.clock()):
            self.counters["commands_rate_limited"] += 1
            message = (
                f"{name} is limited to {bucket.rate:g} per second (bursts of {bucket.burst:g}); "
                f"retry in {bucket.retry_after():.1f} s"
            )
            self.refusals.note(name, "rate_limited", message)
            self.reply(msg, name, self._error(req.id, name, "rate_limited", message))
            return
        try:
            body = cmds.ok_reply(req.id, name, self.device, self.registry.run(name, req.params))
            self.counters["commands_ok"] += 1
        except CommandError as err:
            body = self._error(req.id, name, err.code, err.message)
            if err.code in NOT_RUN:
                self.counters["commands_invalid"] += 1
                self.reply(msg, name, body)
                return
            self.counters["commands_failed"] += 1
        forget = self.recent.put(req.id, body, now)
        try:
            self.store.save_reply(req.id, now, body, forget)
        except OutboxError as exc:  # disk full: the reply is sent, only kept in memory
            self.counters["replies_not_saved"] += 1
            if self.counters["replies_not_saved"] == 1:
                log.warning("MQTT: %s; replies are sent but kept only in memory", exc)
        self.reply(msg, name, body)


class RefusalLog:
    """One WARNING per refusal code, then at most one per ``every_s`` with how many it covers
    (:class:`edge_agent.common.throttle.ThrottledLog`, the cause being the code)."""

    def __init__(self, clock: Callable[[], float], every_s: float = REFUSAL_LOG_EVERY_S) -> None:
        self._log = ThrottledLog(log, every_s, clock=clock)

    def note(self, name: str, code: str, message: str) -> bool:
        """Count a refusal; log it (True) unless one of its code was logged recently."""
        return self._log.warn(code, f"MQTT: refused command {name}: {message}")

    def flush(self) -> None:
        """Log the counts not reported yet (at stop)."""
        self._log.flush(final=True)
