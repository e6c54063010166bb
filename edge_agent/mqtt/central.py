"""Central side I/O: watch the fleet and send commands (used by ``edge-agent fleet``)."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .errors import CommandTimeout
from .fleet import DeviceRow, FleetState
from .link import Incoming, Link, LinkSettings
from .topics import STREAMS

MAX_REPLIES = 10_000


def watch(
    settings: LinkSettings,
    on_row: Callable[[DeviceRow], None],
    *,
    root: str = "edge",
    duration: float | None = None,
    count: int | None = None,
    stop: threading.Event | None = None,
    on_idle: Callable[[FleetState], None] | None = None,
    connect_timeout: float = 10.0,
) -> FleetState:
    """Follow ``<root>/+/<stream>`` and call ``on_row`` for every changed device row.

    Returns after ``duration`` seconds, after ``count`` records, or when ``stop`` is set.
    ``on_idle`` is called about once a second (to refresh a live table).
    """
    state = FleetState(root)
    inbox: queue.Queue[Incoming] = queue.Queue(maxsize=10_000)

    def on_message(m: Incoming) -> None:
        try:
            inbox.put_nowait(m)
        except queue.Full:
            state.ignored += 1

    s = replace(settings, clean_start=True, session_expiry_s=0)
    link = Link(
        s, subscriptions=[f"{root}/+/{st}" for st in STREAMS], on_message=on_message, quiet=True
    )
    link.start(wait=connect_timeout)
    stop = stop or threading.Event()
    end = time.monotonic() + duration if duration is not None else None
    seen = 0
    last_idle = 0.0
    try:
        while not stop.is_set():
            if end is not None and time.monotonic() >= end:
                break
            if count is not None and seen >= count:
                break
            try:
                m = inbox.get(timeout=0.2)
            except queue.Empty:
                m = None
            if m is not None:
                row = state.ingest(m.topic, m.payload, time.time())
                if row is not None:
                    seen += 1
                    on_row(row)
            if on_idle is not None and time.monotonic() - last_idle >= 1.0:
                last_idle = time.monotonic()
                on_idle(state)
    finally:
        link.stop()
    return state


def send_command(
    settings: LinkSettings,
    topic: str,
    body: dict[str, Any],
    *,
    reply_filter: str,
    timeout: float = 10.0,
    expect: int | None = 1,
    also: str | None = None,
    on_also: Callable[[bytes], None] | None = None,
) -> list[dict[str, Any]]:
    """Publish a command on ``topic`` and collect replies with the same ``id``.

    MQTT 5: the replies come to our own response topic with our correlation data.
    MQTT 3.1.1: they come to ``reply_filter`` (``<prefix>/cmd/<name>/reply``, ``+`` for a
    group) and are matched by ``id``. Waits for ``expect`` replies (None: until ``timeout``).
    ``also``: a topic subscribed to before the command goes out (``<prefix>/snapshot``); its
    first message goes to ``on_also`` and is waited for too, within the same ``timeout``.
    """
    req_id = str(body["id"])
    v5 = settings.protocol == "5"
    corr = uuid.uuid4().bytes
    response_topic = f"fleet/{settings.client_id}/reply"
    replies: list[dict[str, Any]] = []
    cond = threading.Condition()

    extra: list[bytes] = []

    def on_message(m: Incoming) -> None:
        if also is not None and m.topic == also:
            with cond:
                extra.append(m.payload)
                cond.notify_all()
            return
        if v5 and m.correlation != corr:
            return
        try:
            data = json.loads(m.payload)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(data, dict) or (data.get("id") not in (req_id, None)):
            return
        with cond:
            if len(replies) < MAX_REPLIES:
                replies.append(data)
            cond.notify_all()

    s = replace(settings, clean_start=True, session_expiry_s=0)
    subs = [response_topic if v5 else reply_filter] + ([also] if also else [])
    link = Link(s, subscriptions=subs, on_message=on_message, quiet=True)
    link.start(wait=10.0)
    try:
        link.publish(
            topic,
            json.dumps(body).encode(),
            qos=1,
            correlation=corr if v5 else None,
            response_topic=response_topic if v5 else None,
        )
        deadline = time.monotonic() + timeout
        with cond:
            while expect is None or len(replies) < expect or (also and not extra
                                                                 and _all_ok(replies)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                cond.wait(left)
            got = list(replies)
            first_extra = extra[0] if extra else None
    finally:
        link.stop()
    if first_extra is not None and on_also is not None:
        on_also(first_extra)
    if not got and expect is not None:
        exp = body.get("expires_at")
        valid_s = None if exp is None else float(exp) - time.time()
        if valid_s is None:
            later = "it has no expires_at: the device runs it whenever it comes back"
        elif valid_s <= 0:
            later = "it has expired: a device that gets it now replies expired, does not run it"
        else:
            later = f"it expires in {valid_s:.0f} s: a device back before then runs it"
        raise CommandTimeout(
            f"no reply to {topic} (id {req_id}) within {timeout:g} s; is the device online? "
            f"({later}; a repeat with the same --id is safe: it is answered, not re-run)"
        )
    return got


def _all_ok(replies: list[dict[str, Any]]) -> bool:
    """No reply says it failed (an error reply ends the wait for the extra message)."""
    return all(r.get("ok", True) for r in replies)
