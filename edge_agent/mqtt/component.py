"""MqttComponent: the agent's MQTT link (status, metrics, events, update, commands).

Threads: paho's network thread (callbacks only queue work), the *drainer* here (outbox ->
paho, PUBACKs -> batched outbox deletes, status, queued events) and the command worker
(:mod:`.dispatch`, so a slow handler never blocks the network thread). ``publish`` writes
to the outbox and returns once the record is on disk.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import __version__
from ..common.throttle import ThrottledLog, cause_of
from ..component import Component
from ..config import Config
from ..errors import EdgeAgentError
from . import commands as cmds
from .builtin import BuiltinCommands
from .delivery import ACK_FLUSH_S, Delivery
from .dispatch import CommandDispatcher
from .errors import MqttError, RecordNotStored
from .events import TokenBucket, cap_event
from .link import Incoming, Link, settings_from_config
from .outbox import Caps, Outbox
from .topics import STREAMS, Topics

log = logging.getLogger("edge_agent.mqtt")

EXPIRE_EVERY_S = 10.0
STOP_DRAIN_S = 0.8
SNAPSHOT_BURST = 3.0
OUTBOX_RETRY_S = 5.0
"""How often an outbox that could not be opened (disk full at start) is tried again."""


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


def topics_for(cfg: Config) -> Topics:
    return Topics(cfg.mqtt_prefix, cfg.mqtt.group_prefix, tuple(cfg.device.groups))


class MqttComponent(Component):
    """See docs/mqtt.md for the topics and payloads, docs/architecture.md for the contract."""

    name = "mqtt"

    def __init__(
        self, config: Config | None = None, *, reload: Callable[[], Iterable[str]] | None = None
    ) -> None:
        """``reload() -> applied keys``: what the ``reload`` command runs besides the MQTT
        settings (the ops reload, which applies ``[logging]``); wired by :mod:`edge_agent.app`."""
        self.config = config
        self._log = ThrottledLog(log)  # per message / per drain-loop warnings
        self.reload_hook = reload
        self.status_fields: dict[str, Any] = {}
        self.agent: Any = None
        self.topics: Topics | None = None
        self.outbox: Outbox | None = None
        self.link: Link | None = None
        self._registry = cmds.Registry()
        self._dispatcher: CommandDispatcher | None = None
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=64)
        self.bucket = TokenBucket(2.0)
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._status_dirty = False
        self._status_sent = b""
        self._threads: list[threading.Thread] = []
        self._delivery = Delivery(0)  # drainer thread only; sized at start
        self.started_at = time.time()
        self.counters: collections.Counter[str] = collections.Counter()
        self._write_failing = False  # records are being lost (logged once per outage)
        self._last_open_try = 0.0
        BuiltinCommands(self).register()

    # -- the contract used by other components -----------------------------------------------
    def publish(self, stream: str, payload: dict[str, Any], retain: bool = False) -> int:
        """Publish a record on ``stream``; returns its ``seq`` (0 for ``status``, see below).

        ``metrics``, ``events`` and ``update`` are stored in the on-disk outbox (QoS 1) before
        this returns and leave it on PUBACK. ``status`` merges ``payload`` into
        :attr:`status_fields` and re-publishes the retained status record. A record that
        cannot be stored (disk full) raises :class:`RecordNotStored`; it is counted, logged
        once per outage, and published as a gap once the outbox can write again.
        """
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; expected one of {', '.join(STREAMS)}")
        if stream == "status":
            self.status_fields.update(payload)
            self._mark_status()
            return 0
        if self.outbox is None or self.topics is None:
            raise MqttError(f"publish({stream!r}) before the MQTT component started")
        base = {k: v for k, v in payload.items() if k != "seq"}
        base.setdefault("ts", round(time.time(), 3))
        base.setdefault("device", self._device)

        def build(seq: int) -> bytes:
            return dumps({"seq": seq, **base})

        try:
            seq = self.outbox.append(stream, self.topics.stream(stream), build, retain=retain)
        except RecordNotStored as exc:
            self._not_stored(exc)
            raise
        if self._write_failing:
            self._stored_again()
        self._notify()
        return seq

    def add_command(
        self,
        name: str,
        handler: cmds.Handler,
        params_model: type[Any] | None = None,
    ) -> None:
        """Register ``handler(params) -> reply body`` for ``<prefix>/cmd/<name>``.

        ``params_model`` (a pydantic model) validates the params before the handler runs.
        """
        self._registry.add(name, handler, params_model)

    def command_names(self) -> list[str]:
        return self._registry.names()

    def run_command(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run a registered command now (the HTTP API's ``POST /v1/commands/{name}``);
        any refusal or failure is a :class:`CommandError`."""
        return self._registry.run(name, params)

    # -- Component lifecycle ---------------------------------------------------------------
    def start(self, agent: Any) -> None:
        self.agent = agent
        cfg: Config = self.config or agent.config
        self.config = cfg
        m = cfg.mqtt
        self.topics = topics_for(cfg)
        self.outbox, aside = Outbox.open_or_reset(
            Path(cfg.device.state_dir) / "mqtt" / "outbox.sqlite",
            Caps(m.outbox.max_records, m.outbox.max_bytes, m.outbox.max_age_s),
            gap_record=self._gap_record,
            degrade=True,
        )
        if not self.outbox.is_open:
            self._write_failing = True
            self.status_fields["degraded"] = {"outbox": self.outbox.open_error}
            log.error(
                "MQTT: %s; running degraded: records are not stored (each loss is published "
                "as a gap once it opens), retrying every %g s",
                self.outbox.open_error,
                OUTBOX_RETRY_S,
            )
        if aside is not None:
            self.counters["outbox_reset"] += 1
            log.error(
                "MQTT: the outbox was damaged; moved to %s, started a new one "
                "(seq numbers restart at 1)",
                aside,
            )
        self._dispatcher = CommandDispatcher(
            self._registry,
            device=cfg.device.id,
            topics=self.topics,
            store=self.outbox,
            reply=self._reply,
            max_bytes=lambda: m.max_command_bytes,
            queue_size=m.command_queue,
            recent=m.recent_commands,
            counters=self.counters,
            limits={"snapshot": TokenBucket(m.snapshot_per_s, SNAPSHOT_BURST)},
        )
        self.bucket = TokenBucket(m.events_per_s)
        self.started_at = time.time()
        model = getattr(agent, "model_info", None)
        if isinstance(model, dict) and model:
            self.status_fields.setdefault("model", dict(model))
            if model.get("backend"):
                self.status_fields.setdefault("backend", model["backend"])
        will_seq = self.outbox.next_seq("status")
        will = dumps(self._status_body(False, "connection lost", will_seq))
        self.link = Link(
            settings_from_config(cfg),
            subscriptions=self.topics.command_filters(),
            will=(self.topics.status, will),
            on_message=self._dispatcher.on_message,
            on_state=self._on_link_state,
            on_ack=self._notify,
        )
        self._delivery = Delivery(self.link.settings.max_inflight)
        self._stopping.clear()
        self._threads = [threading.Thread(target=self._drain_loop, name="mqtt-drain", daemon=True)]
        for t in self._threads:
            t.start()
        self._dispatcher.start()

    def on_started(self) -> None:
        """Every component has started, so every command is registered: connect."""
        assert self.link is not None and self.topics is not None and self.outbox is not None
        self.link.start()
        log.info(
            "MQTT: %s as %s, prefix %s, %d records waiting in the outbox",
            self.link.settings.where,
            self.link.settings.client_id,
            self.topics.prefix,
            len(self.outbox),
        )

    def contribute(self, snapshot: dict[str, Any]) -> None:
        snapshot["mqtt"] = self.stats()

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        try:
            self.publish("metrics", snapshot)
        except RecordNotStored:
            pass  # disk full: counted and logged by publish, a gap record follows
        except MqttError as exc:
            log.error("MQTT: metrics record not stored: %s", exc)
        if self._status_payload_changed():
            self._mark_status()

    def on_result(self, result: Any) -> None:
        """Rate-limited, size-capped ``events``; never blocks the inference worker."""
        if self.config is None or self._stopping.is_set():
            return
        if not self.bucket.allow(time.monotonic()):
            self.counters["events_rate_limited"] += 1
            return
        body = result.to_json() if hasattr(result, "to_json") else result
        if not isinstance(body, dict):
            body = {"result": body}
        if not (body.get("detections") or body.get("classes") or body.get("error")):
            return  # nothing seen: metrics carry the frame counts
        capped = cap_event(body, self.config.mqtt.max_event_bytes)
        if capped is None:
            self.counters["events_too_large"] += 1
            return
        if capped is not body:
            self.counters["events_truncated"] += 1
        if len(self._events) == self._events.maxlen:
            self.counters["events_queue_full"] += 1
        self._events.append({**capped, "ts": round(time.time(), 3)})
        self._notify()

    def stop(self) -> None:
        # give records already queued a moment to be acknowledged (bounded: stop stays quick)
        deadline = time.monotonic() + STOP_DRAIN_S
        while (
            self.link is not None
            and self.outbox is not None
            and self.link.connected.is_set()
            and (len(self.outbox) or self._events)
            and time.monotonic() < deadline
        ):
            self._notify()
            time.sleep(0.02)
        self._stopping.set()
        self._notify()
        if self._dispatcher is not None:
            self._dispatcher.stop()
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads = []
        self._log.flush(final=True)
        if self.link is not None and self.outbox is not None and self.topics is not None:
            body = self._status_body(False, "stopped", self.outbox.next_seq("status"))
            self.link.stop(last=(self.topics.status, dumps(body)))
            try:
                self._flush_acks(force=True)
            except EdgeAgentError as exc:  # disk full: they are sent again after a restart
                log.warning("MQTT: acknowledged records not removed at stop: %s", exc)
        if self.outbox is not None:
            self.outbox.close()

    # -- reporting ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"connected": bool(self.link and self.link.connected.is_set())}
        if self.link is not None:
            out["connects"] = self.link.connects
            if self.link.last_error:
                out["last_error"] = self.link.last_error
        if self.outbox is not None:
            out["outbox"] = self.outbox.stats()
        degraded = self.status_fields.get("degraded")
        if isinstance(degraded, dict) and degraded.get("outbox"):
            out["degraded"] = degraded["outbox"]
        out.update({k: v for k, v in sorted(self.counters.items())})
        return out

    @property
    def _device(self) -> str:
        return self.config.device.id if self.config else "unknown"

    def _status_body(self, online: bool, reason: str, seq: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "seq": seq,
            "device": self._device,
            "online": online,
            "state": "online" if online else "offline",
            "agent_version": __version__,
            "started_at": round(self.started_at, 3),
            "ts": round(time.time(), 3),
        }
        if self.config is not None:
            body["groups"] = list(self.config.device.groups)  # rollouts by group (fleet serve)
        if not online:
            body["reason"] = reason
            for key in ("model", "models"):  # what it ran, for `fleet watch` while it is away
                if key in self.status_fields:
                    body[key] = self.status_fields[key]
        else:
            body.update(dict(self.status_fields))  # a copy: other threads add fields
        return body

    def _status_payload_changed(self) -> bool:
        return dumps(dict(self.status_fields)) != self._status_sent

    def _mark_status(self) -> None:
        with self._wake:
            self._status_dirty = True
            self._wake.notify()

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()

    # -- a full disk -------------------------------------------------------------------------
    def _gap_record(self, stream: str, seq: int, gap: dict[str, Any]) -> tuple[str, bytes]:
        assert self.topics is not None
        body = {"seq": seq, "ts": round(time.time(), 3), "device": self._device, "gap": gap}
        return self.topics.stream(stream), dumps(body)

    def _not_stored(self, exc: RecordNotStored) -> None:
        self.counters["outbox_write_errors"] += 1
        if not self._write_failing:
            self._write_failing = True
            self.status_fields["degraded"] = {"outbox": f"records not stored ({exc.reason})"}
            self._mark_status()
            log.error(
                "MQTT: %s; records are not stored until the outbox can write again (each "
                "keeps its seq; the loss is published as a gap record); not logged again",
                exc,
            )

    def _stored_again(self) -> None:
        self._write_failing = False
        self.status_fields.pop("degraded", None)
        self._mark_status()
        log.warning(
            "MQTT: the outbox stores records again; the records lost meanwhile are published "
            "as gap records (counted in metrics.mqtt.outbox.dropped)"
        )

    def _retry_outbox(self) -> None:
        assert self.outbox is not None
        now = time.monotonic()
        if self.outbox.is_open or now - self._last_open_try < OUTBOX_RETRY_S:
            return
        self._last_open_try = now
        if self.outbox.retry_open():
            log.info("MQTT: the outbox %s is open", self.outbox.path)
            if self._dispatcher is not None:
                self._dispatcher.load_replies()
            if self.outbox.unstored() == 0:
                self._stored_again()
            else:  # opened, but cannot commit yet: the next record that is stored reports them
                self.status_fields["degraded"] = {"outbox": "records not stored (disk full)"}
                self._mark_status()

    def _on_link_state(self, up: bool) -> None:
        if up:
            self._mark_status()

    # -- drainer thread ----------------------------------------------------------------------
    def _drain_loop(self) -> None:
        last_expire = 0.0
        while not self._stopping.is_set():
            with self._wake:
                self._wake.wait(timeout=ACK_FLUSH_S if self._delivery.inflight else 0.5)
            try:
                self._retry_outbox()
                self._drain_once()
                if time.monotonic() - last_expire > EXPIRE_EVERY_S:
                    last_expire = time.monotonic()
                    assert self.outbox is not None
                    self.outbox.expire()
            except EdgeAgentError as exc:
                self._log.log(logging.ERROR, cause_of(str(exc)), f"MQTT: {exc}")
                self._stopping.wait(1.0)
            except Exception:  # keep draining whatever happens
                log.exception("MQTT drainer error")
                self._stopping.wait(1.0)
        try:
            self._drain_once(final=True)
        except EdgeAgentError as exc:
            log.warning("MQTT: at stop: %s", exc)
        except Exception:
            log.exception("MQTT drainer error at stop")

    def _drain_once(self, final: bool = False) -> None:
        assert self.outbox is not None and self.link is not None and self.topics is not None
        while self._events:
            try:
                self.publish("events", self._events.popleft())
            except RecordNotStored:
                pass  # counted and logged by publish, a gap record follows
        self._try_flush_acks(force=final)
        if not self.link.connected.is_set():
            return
        if self._status_dirty:
            self._status_dirty = False
            self._status_sent = dumps(dict(self.status_fields))
            body = self._status_body(True, "", self.outbox.next_seq("status"))
            self.link.publish(self.topics.status, dumps(body), qos=1, retain=True)
        d = self._delivery
        while d.room() > 0 and not final:
            rows = self.outbox.fetch(d.last_handed, limit=d.room())
            if not rows:
                break
            for row in rows:
                d.handed(self.link.publish(row.topic, row.payload, qos=1, retain=row.retain),
                         row.id)
            self._try_flush_acks()

    def _try_flush_acks(self, force: bool = False) -> None:
        """Remove acknowledged records; a disk that cannot delete must not stop the sending.

        The acknowledged rows stay in memory and are removed by a later flush; the status and
        the records after them are sent meanwhile (a full disk made the degraded status wait).
        """
        try:
            self._flush_acks(force=force)
        except EdgeAgentError as exc:
            self._log.log(logging.ERROR, cause_of(str(exc)), f"MQTT: {exc}")

    def _flush_acks(self, force: bool = False) -> None:
        assert self.link is not None and self.outbox is not None
        d = self._delivery
        while True:
            try:
                mid, ok = self.link.acks.get_nowait()
            except queue.Empty:
                break
            if d.ack(mid, time.monotonic()) is not None and not ok:
                self.counters["rejected_by_broker"] += 1
        done = d.due(time.monotonic(), force=force)
        if done:
            self.outbox.delete(done)
            self.counters["sent"] += len(done)
            d.deleted(done)

    def _reply(self, msg: Incoming, name: str, reply: dict[str, Any]) -> None:
        assert self.link is not None and self.topics is not None
        topic = msg.response_topic or self.topics.reply(name)
        try:
            self.link.publish(topic, dumps(reply), qos=1, correlation=msg.correlation)
        except (EdgeAgentError, ValueError) as exc:
            self._log.warn(f"cannot reply: {cause_of(str(exc))}",
                           f"MQTT: cannot reply on {topic}: {exc}")
