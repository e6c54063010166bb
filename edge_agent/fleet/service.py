"""The running fleet service: MQTT ingest -> fleet store -> rollout controllers -> commands.

One loop thread owns the in-memory fleet table and the active rollouts. Each pass takes a batch
of messages from the MQTT link (manual acknowledgement), applies them, serves operator requests
(from the HTTP API), lets every active rollout decide, then writes everything in **one**
transaction; only after the commit are the messages acknowledged (PUBACK) and the commands
the controllers chose published. So:

- a ``kill -9`` at any moment loses nothing acknowledged: unacknowledged messages come again
  from the broker (persistent session); one stored but not yet acknowledged comes again as a
  duplicate ``seq`` and changes nothing;
- a command is saved as an intent before it is published and marked sent on its PUBACK; after
  a restart the ones never marked sent are published again *with the same id* (the device
  answers a repeat, never runs it twice); the others are not sent again.

Subscriptions (MQTT 5): ``$share/<group>/<root>/+/<stream>`` for every stream (replicas of the
service split the load), ``<root>/+/status`` for the retained statuses (a shared subscription
gets no retained messages; its live copies are duplicates by ``seq``) and the service's own
reply topic ``fleet/<client id>/reply``. mosquitto (2.0) forgets shared subscriptions when *it*
restarts, even with persistence, until the client subscribes again: records sent in between
are lost for the service (they show as gaps). ``[fleet] shared = false`` uses plain
subscriptions, which the broker's persistence keeps (one replica only).
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..mqtt.errors import BrokerError
from ..mqtt.fleet import DeviceRow, FleetState
from ..mqtt.link import Incoming, Link, LinkSettings
from ..mqtt.topics import STREAMS, Topics, device_of
from . import rollout as R
from .errors import FleetError, FleetStoreError, NotLeader, RolloutError
from .store import Batch, CommandRow, FleetStore, StoreTx, UpdateRecord

log = logging.getLogger("edge_agent.fleet")

T = TypeVar("T")
INBOX = 10_000
BATCH = 500
LINGER_S = 0.05  # a batch waits this long at most for more records ...
LINGER_GAP_S = 0.01  # ... and not once none came for this long
REQUEST_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ServeSettings:
    root: str = "edge"
    share_group: str = "fleet"
    shared: bool = True
    max_devices: int = 100_000
    tick_s: float = 1.0
    registry: str | None = None  # default registry of rollouts
    advertise: str | None = None  # this replica's HTTP API, for the others to forward to

    @property
    def leader_lock(self) -> str:
        """The name of the rollout leader's lock (one per fleet: root + share group)."""
        return f"edge-fleet:{self.root}:{self.share_group}"


REREAD_S = 30.0
"""The leader re-reads records the other replicas stored this far back (their commits trail
their ``received_at``; a record seen twice changes nothing)."""


class FleetService:
    def __init__(self, store: FleetStore, link: LinkSettings, settings: ServeSettings,
                 clock: Callable[[], float] = time.time) -> None:
        if link.protocol != "5":
            raise FleetError("fleet serve needs MQTT 5 (shared subscriptions): set "
                             "[mqtt] protocol = \"5\"")
        self.store = store
        self.settings = settings
        self.link_settings = replace(link, clean_start=False)
        self.clock = clock
        self.fleet = FleetState(settings.root, settings.max_devices)
        self.rollouts: dict[str, R.Rollout] = {}
        self._saved: dict[str, str] = {}  # rollout id -> the JSON last written
        # one reply topic for every replica: whoever gets a reply stores it, the leader reads it
        self.reply_topic = f"fleet/{settings.share_group}/reply"
        self.leading = False
        self._lead_tried = 0.0
        self._reread_from = 0.0  # the leader reads others' records from here (0: all)
        self._seen_records: set[tuple[str, int]] = set()
        self._seen_replies: set[tuple[str, str]] = set()
        self._views: tuple[float, dict[str, R.DeviceView]] | None = None
        self.counters: collections.Counter[str] = collections.Counter()
        self.inbox: queue.Queue[Incoming] = queue.Queue(maxsize=INBOX)
        self._requests: queue.Queue[tuple[Callable[[Batch], Any], Future[Any]]] = queue.Queue()
        self._pending: dict[int, tuple[str, str]] = {}  # publish mid -> (device, command id)
        self._to_publish: list[CommandRow] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.link: Link | None = None
        self.last_batch_at: float | None = None
        self._last_tick = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        # the rows in memory, each with its stored revision: the only writer (SQLite) writes
        # from them; replicas (PostgreSQL) read again only the rows another one changed
        for row in self.store.devices():
            self.fleet.devices[row.device] = row
        s = self.settings
        if s.shared:
            subs = [f"$share/{s.share_group}/{s.root}/+/{st}" for st in STREAMS]
            subs += [f"{s.root}/+/status", f"$share/{s.share_group}/{self.reply_topic}"]
        else:
            subs = [f"{s.root}/+/{st}" for st in STREAMS] + [self.reply_topic]
        self.link = Link(self.link_settings, subscriptions=subs, on_message=self._on_message,
                         manual_ack=True, quiet=False)
        self.link.start()  # connects in the background; paho keeps what we publish meanwhile
        log.info("fleet serve: %d device(s) from the store", len(self.fleet.devices))
        self._thread = threading.Thread(target=self._run, name="fleet-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.link is not None:
            self.link.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _take_lead(self) -> None:
        """This replica now leads the rollouts: the active ones from the store, and the
        commands saved but never acknowledged are sent again (the same ids: a device that
        got one answers a repeat and does not run it twice)."""
        for r in self.store.rollouts(active_only=True):
            self.rollouts[r.id] = r
            self._saved[r.id] = json.dumps(r.to_json())
        unsent = [c for r in self.rollouts for c in self.store.commands(rollout=r, unsent=True)]
        for c in unsent:
            self._publish(c)
            self.counters["commands_resent"] += 1
        self._reread_from = 0.0
        self.store.set_leader(self.settings.leader_lock, self.link_settings.client_id,
                              self.settings.advertise, self.clock())
        log.info("fleet serve: leading the rollouts (lock %s): %d active",
                 self.settings.leader_lock, len(self.rollouts))
        if unsent:
            log.info("re-sent %d command(s) saved but not acknowledged by the previous leader "
                     "(same ids: a device that got one answers a repeat)", len(unsent))

    def _try_lead(self, now: float) -> None:
        if self.leading or now - self._lead_tried < self.settings.tick_s:
            return
        self._lead_tried = now
        if self.store.lead(self.settings.leader_lock):
            self.leading = True
            self.counters["leader_takeovers"] += 1
            self._take_lead()

    def health(self) -> dict[str, Any]:
        return {"ok": self.running and self.error is None, "leader": self.leading,
                "broker_connected": bool(self.link and self.link.connected.is_set()),
                "inbox": self.inbox.qsize(), "devices": len(self.fleet.devices),
                "active_rollouts": len(self.rollouts), "last_batch_at": self.last_batch_at,
                "error": str(self.error) if self.error else None}

    # -- requests from other threads (HTTP) ------------------------------------------------
    def call(self, fn: Callable[[Batch], T]) -> T:
        """Run ``fn(batch)`` on the loop thread; its changes are stored before this returns."""
        if not self.running:
            raise FleetError(f"fleet serve is not running ({self.error or 'stopped'})")
        fut: Future[T] = Future()
        self._requests.put((fn, fut))
        return fut.result(REQUEST_TIMEOUT_S)

    def create_rollout(self, *, model: str, version: str, policy: R.Policy,
                       group: str | None = None, devices: list[str] | None = None,
                       registry: str | None = None) -> dict[str, Any]:
        """A new rollout (its first wave pushed); returns its JSON (``Rollout.to_json``)."""
        def go(b: Batch) -> dict[str, Any]:
            self._must_lead()
            rid = f"r{time.strftime('%Y%m%d', time.gmtime(self.clock()))}-{secrets.token_hex(3)}"
            r = R.create(rid, model, version, policy, self._view(), self.clock(), group=group,
                         devices=devices, registry=registry or self.settings.registry)
            self.rollouts[r.id] = r
            self._tick_one(r, b)
            return r.to_json()  # a copy: the loop goes on changing r
        return self.call(go)

    def operate(self, rollout_id: str, action: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``abort`` a rollout; returns its JSON."""
        ops = {"pause": R.pause, "resume": R.resume, "abort": R.abort}

        def go(b: Batch) -> dict[str, Any]:
            self._must_lead()
            r = self.rollouts.get(rollout_id)
            if r is None:
                stored = self.store.rollout(rollout_id)
                if stored is None:
                    raise RolloutError(f"rollout {rollout_id}: no such rollout")
                raise R.IllegalTransition(rollout_id, action, stored.state)
            ops[action](r, self.clock())
            self._tick_one(r, b)
            return r.to_json()
        if action not in ops:
            raise RolloutError(f"rollout {rollout_id}: unknown action {action!r}")
        return self.call(go)

    def _must_lead(self) -> None:
        if not self.leading:
            raise NotLeader("this fleet serve replica does not lead the rollouts (another one "
                            "holds the lock) and could not forward the request to it: send it "
                            "to the leader (GET /healthz: \"leader\": true)")

    # -- the loop --------------------------------------------------------------------------
    def _on_message(self, m: Incoming) -> None:  # paho's thread: hand over, never drop
        while not self._stop.is_set():
            try:
                self.inbox.put(m, timeout=0.5)  # full: the broker waits for our acks
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msgs = self._take()
                now = self.clock()
                self._try_lead(now)
                futures: list[tuple[Future[Any], Any, BaseException | None]] = []
                self.store.transact(functools.partial(self._pass, msgs=msgs, now=now,
                                                      futures=futures))
                assert self.link is not None
                for m in msgs:
                    self.link.ack(m)
                for c in self._to_publish:
                    why = self._publish(c)
                    owner = self.rollouts.get(c.rollout or "")
                    if why and owner is not None:  # counted failed now, saved next pass
                        R.on_reply(owner, c.device, c.name, False, now, code="unsendable",
                                   message=why)
                self._to_publish.clear()
                for fut, result, exc in futures:
                    if exc is not None:
                        fut.set_exception(exc)
                    else:
                        fut.set_result(result)
                if msgs:
                    self.counters["batches"] += 1
                    self.last_batch_at = now
        except FleetStoreError as exc:
            self.error = exc
            log.error("%s", exc)
        except Exception as exc:
            self.error = exc
            log.exception("fleet serve: the loop failed")
        finally:
            while not self._requests.empty():
                _, fut = self._requests.get_nowait()
                fut.set_exception(FleetError(f"fleet serve stopped: {self.error or 'stopping'}"))

    def _pass(self, tx: StoreTx, msgs: list[Incoming], now: float,
              futures: list[tuple[Future[Any], Any, BaseException | None]]) -> Batch:
        """One pass inside one transaction: apply, serve requests, decide; what to write."""
        b = Batch()
        changed: dict[str, DeviceRow] = {}
        if self.store.shared_writers and msgs:  # replicas share the rows: lock them, and
            # read again those another replica changed since this one's copy (its revision)
            touched = {w[0] for w in (device_of(m.topic, self.settings.root) for m in msgs) if w}
            known = {d: row.rev for d in touched
                     if (row := self.fleet.devices.get(d)) is not None and row.rev}
            fresh = tx.lock_devices(touched, known)
            for d in touched - known.keys():  # not stored by this replica yet
                self.fleet.devices.pop(d, None)
            self.fleet.devices.update(fresh)
            self.counters["rows_reread"] += len(fresh)
        for m in msgs:
            self._apply(m, b, changed, now)
        if self._views is not None:  # what this pass saw, before the next read of all
            views = self._views[1]
            for d, row in changed.items():
                views[d] = R.DeviceView(row.online, row.active, row.groups, row.last_seen)
        self._acked(b, now)
        futures += self._serve_requests(b)
        if msgs or futures or now - self._last_tick >= self.settings.tick_s:
            self._last_tick = now
            if self.leading and self.store.shared_writers and self.rollouts:
                self._read_others(now)
            for r in list(self.rollouts.values()):
                self._tick_one(r, b)
        self._collect_rollouts(b)
        b.rows = list(changed.values())
        return b

    def _read_others(self, now: float) -> None:
        """The leader: the update records and replies of its rollouts that any replica stored
        (its own ones again too: a record or reply seen twice changes nothing)."""
        since = max(0.0, self._reread_from - REREAD_S) if self._reread_from else 0.0
        self._reread_from = now
        for u in self.store.updates_since(list(self.rollouts), since):
            r = self.rollouts.get(u.deployment or "")
            if r is not None and u.state and (u.device, u.seq) not in self._seen_records:
                self._seen_records.add((u.device, u.seq))
                R.on_record(r, u.device, u.state, now, reason=u.reason or "",
                            detail=u.detail or "")
        for rid, r in list(self.rollouts.items()):
            for c in self.store.commands(rollout=rid, replied_since=since):
                if c.reply is None or (c.device, c.id) in self._seen_replies:
                    continue
                self._seen_replies.add((c.device, c.id))
                e = c.reply.get("error")
                err: dict[str, Any] = e if isinstance(e, dict) else {}
                R.on_reply(r, c.device, c.name, bool(c.reply.get("ok")), now,
                           code=str(err.get("code") or ""),
                           message=str(err.get("message") or ""))

    def _take(self) -> list[Incoming]:
        # commands awaiting their PUBACK: a pass soon, to store them sent (a replica that
        # dies before would send them again: the same ids, but a second push all the same)
        acking = bool(self._pending) and self.link is not None and self.link.connected.is_set()
        try:
            first = self.inbox.get(timeout=0.01 if acking else 0.2)
        except queue.Empty:
            return []
        out = [first]
        deadline = time.monotonic() + (0.0 if acking else LINGER_S)
        while len(out) < BATCH:  # gather a batch: one transaction costs about as much for
            try:                 # 5 records as for 100 (the broker's in-flight window)
                out.append(self.inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(self.inbox.get(timeout=min(left, LINGER_GAP_S)))
            except queue.Empty:  # nothing more coming now (or the broker waits for our acks)
                break
        return out

    def _apply(self, m: Incoming, b: Batch, changed: dict[str, Any], now: float) -> None:
        if m.topic == self.reply_topic:
            self._reply(m.payload, b, now)
            return
        got = self.fleet.ingest_record(m.topic, m.payload, now)
        if got is None:
            self.counters["ignored"] += 1
            return
        changed[got.row.device] = got.row
        if not got.applied:
            self.counters["duplicates"] += 1
            return
        self.counters["records"] += 1
        if got.stream == "update" and got.seq is not None and "gap" not in got.data:
            u = UpdateRecord.from_data(got.row.device, got.seq, got.data, now)
            b.updates.append(u)
            r = self.rollouts.get(u.deployment or "")
            if r is not None and u.state:
                R.on_record(r, u.device, u.state, now, reason=u.reason or "",
                            detail=u.detail or "")

    def _reply(self, payload: bytes, b: Batch, now: float) -> None:
        try:
            d = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            self.counters["ignored"] += 1
            return
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or \
                not isinstance(d.get("device"), str):
            self.counters["ignored"] += 1
            return
        cid, device = d["id"], d["device"]
        self.counters["replies"] += 1
        b.replies.append((device, cid, d, now))
        r = self.rollouts.get(cid.rsplit(".", 1)[0])
        if r is None:
            return
        e = d.get("error")
        err: dict[str, Any] = e if isinstance(e, dict) else {}
        R.on_reply(r, device, str(d.get("command") or cid.rsplit(".", 1)[-1]),
                   bool(d.get("ok")), now, code=str(err.get("code") or ""),
                   message=str(err.get("message") or ""))

    def _acked(self, b: Batch, now: float) -> None:
        assert self.link is not None
        while True:
            try:
                mid, ok = self.link.acks.get_nowait()
            except queue.Empty:
                return
            key = self._pending.pop(mid, None)
            if key is not None and ok:
                b.sent.append((key[0], key[1], now))

    def _serve_requests(self, b: Batch) -> list[tuple[Future[Any], Any, BaseException | None]]:
        done: list[tuple[Future[Any], Any, BaseException | None]] = []
        while True:
            try:
                fn, fut = self._requests.get_nowait()
            except queue.Empty:
                return done
            try:
                done.append((fut, fn(b), None))
            except (RolloutError, FleetError) as exc:
                done.append((fut, None, exc))
            except Exception as exc:  # a bug in one request must not end the service
                log.exception("fleet serve: request failed")
                done.append((fut, None, FleetError(f"request failed: {type(exc).__name__}: "
                                                   f"{exc}")))

    def _tick_one(self, r: R.Rollout, b: Batch) -> None:
        now = self.clock()
        for cmd in R.tick(r, now, self._view()):
            body = {"id": cmd.id, "params": cmd.params, "expires_at": round(cmd.expires_at, 3)}
            row = CommandRow(cmd.device, cmd.id, cmd.name, r.id, body, now)
            b.commands.append(row)
            self._to_publish.append(row)

    def _collect_rollouts(self, b: Batch) -> None:
        for rid, r in list(self.rollouts.items()):
            doc = json.dumps(r.to_json())
            if doc != self._saved.get(rid):
                self._saved[rid] = doc
                b.rollouts.append(r)
            if r.final:
                del self.rollouts[rid]
                self._saved.pop(rid, None)

    def _view(self) -> dict[str, R.DeviceView]:
        """What the controllers see of every device: built once from memory (the only
        writer) or read once a tick from the store (replicas: every device any of them
        stored); each pass puts in the rows it changed."""
        now = self.clock()
        if not self.store.shared_writers:
            if self._views is None:
                self._views = (now, {d: R.DeviceView(row.online, row.active, row.groups,
                                                     row.last_seen)
                                     for d, row in self.fleet.devices.items()})
        elif self._views is None or now - self._views[0] >= self.settings.tick_s:
            self._views = (now, {d: R.DeviceView(online, active, groups, seen) for
                                 d, online, active, groups, seen in self.store.device_views()})
        return self._views[1]

    def _publish(self, c: CommandRow) -> str:
        """Hand a command to the link; ``""``, or why it cannot be sent (logged)."""
        assert self.link is not None
        try:
            topic = Topics(f"{self.settings.root}/{c.device}").cmd(c.name)
            mid = self.link.publish(topic, json.dumps(c.body).encode(), qos=1,
                                    correlation=c.id.encode(), response_topic=self.reply_topic)
        except (ValueError, BrokerError) as exc:  # e.g. a device id that is no topic level
            self.counters["commands_unsendable"] += 1
            log.warning("command %s to device %r not sent: %s", c.id, c.device[:80], exc)
            return str(exc)[:200]
        self._pending[mid] = (c.device, c.id)
        self.counters["commands_sent"] += 1
        return ""
