"""Central side of a rollout: send ``update`` to a device or a group and follow its progress.

Subscribes to ``<root>/<device|+>/update`` *before* sending the command (nothing is missed),
then collects the records of this deployment id until every device that accepted it reached a
final state, or the time limit.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..mqtt.central import send_command
from ..mqtt.link import Incoming, Link, LinkSettings
from .rollout import COMMITTED, FINAL

MAX_RECORDS = 10_000


@dataclass
class PushResult:
    deployment: str
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    final: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.accepted) and not self.refused and all(
            self.final.get(d, {}).get("state") == COMMITTED for d in self.accepted
        )


def push_update(
    settings: LinkSettings,
    *,
    cmd_topic: str,
    reply_filter: str,
    update_filter: str,
    params: dict[str, Any],
    group: bool,
    timeout: float,
    on_record: Callable[[str, dict[str, Any]], None],
    reply_timeout: float = 10.0,
    expires_at: float | None = None,
) -> PushResult:
    did = str(params.get("deployment") or uuid.uuid4().hex[:12])
    params = {**params, "deployment": did}
    res = PushResult(did)
    inbox: queue.Queue[Incoming] = queue.Queue(maxsize=MAX_RECORDS)

    def on_message(m: Incoming) -> None:
        try:
            inbox.put_nowait(m)
        except queue.Full:
            pass

    s = replace(settings, clean_start=True, session_expiry_s=0,
                client_id=f"{settings.client_id}-follow")
    link = Link(s, subscriptions=[update_filter], on_message=on_message, quiet=True)
    link.start(wait=10.0)
    try:
        body: dict[str, Any] = {"id": did, "params": params}
        if expires_at is not None:
            body["expires_at"] = expires_at  # a device that gets it after we stop waiting: not run
        replies = send_command(
            settings, cmd_topic, body, reply_filter=reply_filter,
            timeout=reply_timeout, expect=None if group else 1,
        )
        for r in replies:
            dev = str(r.get("device", "?"))
            if r.get("ok"):
                res.accepted.append(dev)
            else:
                err = r.get("error") or {}
                res.refused[dev] = str(err.get("message", err) if isinstance(err, dict) else err)
        deadline = time.monotonic() + timeout
        while res.accepted and any(d not in res.final for d in res.accepted):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                m = inbox.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            try:
                rec = json.loads(m.payload)
            except (ValueError, UnicodeDecodeError):
                continue
            if not isinstance(rec, dict) or rec.get("deployment") != did:
                continue
            dev = str(rec.get("device") or m.topic.split("/")[-2])
            on_record(dev, rec)
            if rec.get("state") in FINAL:
                res.final[dev] = rec
    finally:
        link.stop()
    return res
