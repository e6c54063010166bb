"""``edge-agent fleet simulate``: many simulated devices (:mod:`.simdevice`) over real MQTT 5
connections, one per device, driven by one thread (paho's external-loop API over a selector),
so a fleet of thousands runs on one machine against the real broker and ``fleet serve``.

Each device connects with its last will (the retained offline status), a persistent session
(commands queued while it is away arrive when it is back) and subscribes to ``<p>/cmd/+``;
then it publishes its retained online status, metrics every ``metrics_s`` (phases spread over
the interval), events at ``events_per_s``, answers commands and runs updates step by step.
A device chosen to go offline disconnects *with its will* (MQTT 5 reason code 0x04) once none
of its records is in flight, makes no records while away, and comes back after ``offline_s``.

The report (``--report FILE``, JSON, rewritten every few seconds and at the end) has every
device's seqs, deliberate drops, updates run, pushes received and outcomes, and the totals
(rewritten every second per 1,000 devices, at least every second).
"""

from __future__ import annotations

import heapq
import logging
import os
import random
import resource
import selectors
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..common.atomicfile import write_json_atomic
from .errors import FleetError
from .simdevice import Publish, SimDevice, SimSettings

log = logging.getLogger("edge_agent.fleet.simulate")

SESSION_EXPIRY_S = 3600
MISC_EVERY_S = 1.0  # keep-alive pings and pending writes of every client


@dataclass
class _Conn:
    dev: SimDevice
    client: paho.Client
    connected: bool = False
    offline: bool = False  # away on purpose (will sent), back at a timer
    inflight: set[int] = field(default_factory=set)


class Simulator:
    def __init__(self, settings: SimSettings, host: str, port: int, *,
                 connect_per_s: float = 200.0, keepalive: int = 30) -> None:
        self.s = settings
        self.host, self.port = host, port
        self.connect_per_s = connect_per_s
        self.keepalive = keepalive
        self.rng = random.Random(settings.seed)
        self.sel = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, str, int]] = []
        self._n = 0
        self.conns: list[_Conn] = []
        self.counters: Counter[str] = Counter()
        self.stop_event = threading.Event()
        now = time.time()
        for i in range(settings.devices):
            did = settings.device_id(i)
            dev = SimDevice(did, settings, [settings.groups[i % len(settings.groups)]],
                            random.Random(f"{settings.seed}:{did}"), now)
            self.conns.append(_Conn(dev, self._client(i, did)))

    # -- setup -------------------------------------------------------------------------------
    def _client(self, i: int, did: str) -> paho.Client:
        c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                        client_id=f"edge-agent-{did}", protocol=MQTTProtocolVersion.MQTTv5,
                        userdata=i)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.max_inflight_messages_set(64)
        return c

    def _at(self, t: float, kind: str, i: int) -> None:
        self._n += 1
        heapq.heappush(self.timers, (t, self._n, kind, i))

    @staticmethod
    def raise_fd_limit(need: int) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft >= need:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
        except (ValueError, OSError):
            if hard < need:
                raise FleetError(f"fleet simulate: {need} open files needed, the limit is "
                                 f"{hard}: raise it (ulimit -n) or simulate fewer devices"
                                 ) from None
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # -- paho callbacks (all on this one thread) ---------------------------------------------
    def _on_socket_open(self, client: paho.Client, i: int, sock: Any) -> None:
        self.sel.register(sock, selectors.EVENT_READ, i)

    def _on_socket_close(self, client: paho.Client, i: int, sock: Any) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _on_connect(self, client: paho.Client, i: int, flags: Any, rc: ReasonCode,
                    props: Any) -> None:
        c = self.conns[i]
        if rc.is_failure:
            self.counters["connect_refused"] += 1
            return
        c.connected, c.offline = True, False
        self.counters["connects"] += 1
        client.subscribe(f"{c.dev.prefix}/cmd/+", qos=1)
        self._send(c, c.dev.online(time.time()))

    def _on_disconnect(self, client: paho.Client, i: int, flags: Any, rc: ReasonCode,
                       props: Any) -> None:
        c = self.conns[i]
        c.connected = False
        c.inflight.clear()  # paho sends them again with the session when it reconnects
        if not c.offline and not self.stop_event.is_set():
            self.counters["disconnects_unexpected"] += 1
            self._at(time.time() + 1.0, "reconnect", i)

    def _on_publish(self, client: paho.Client, i: int, mid: int, rc: Any, props: Any) -> None:
        self.conns[i].inflight.discard(mid)

    def _on_message(self, client: paho.Client, i: int, msg: paho.MQTTMessage) -> None:
        c = self.conns[i]
        name = msg.topic.rsplit("/", 1)[-1]
        props = msg.properties
        rt = getattr(props, "ResponseTopic", None)
        corr = getattr(props, "CorrelationData", None)
        now = time.time()
        self.counters["commands"] += 1
        reply, started = c.dev.command(name, bytes(msg.payload), now, rt, corr)
        if reply is not None:
            self._send(c, reply)
        if started:
            self._at(now, "step", i)

    # -- publishing --------------------------------------------------------------------------
    def _send(self, c: _Conn, p: Publish | None) -> None:
        if p is None:
            return
        props = None
        if p.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = p.correlation
        info = c.client.publish(p.topic, p.payload(), qos=1, retain=p.retain, properties=props)
        c.inflight.add(info.mid)
        self.counters["published"] += 1

    def _connect(self, i: int) -> None:
        c = self.conns[i]
        will = c.dev.will(time.time())
        c.client.will_set(will.topic, will.payload(), qos=1, retain=True)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            c.client.connect(self.host, self.port, self.keepalive, clean_start=False,
                             properties=props)
        except OSError as exc:
            self.counters["connect_errors"] += 1
            log.warning("%s: cannot connect to %s:%d: %s", c.dev.id, self.host, self.port, exc)
            self._at(time.time() + 2.0, "reconnect", i)

    # -- timers ------------------------------------------------------------------------------
    def _timer(self, kind: str, i: int, now: float) -> None:
        c = self.conns[i]
        s = self.s
        if kind in ("connect", "reconnect"):
            if not c.connected and not self.stop_event.is_set():
                self._connect(i)
            return
        if kind == "metrics":
            self._at(now + s.metrics_s, "metrics", i)
            if c.connected:
                self._send(c, c.dev.metrics(now))
        elif kind == "event":
            self._at(now + self.rng.expovariate(s.events_per_s), "event", i)
            if c.connected:
                self._send(c, c.dev.event(now))
        elif kind == "step":
            if c.connected:
                rec, final = c.dev.update_step(now)
                self._send(c, rec)
                if not final:
                    self._at(now + s.update_step_s, "step", i)
            else:
                self._at(now + 0.5, "step", i)
        elif kind == "offline":
            if not c.connected or c.inflight or c.dev.update is not None:
                self._at(now + 0.2, "offline", i)  # nothing in flight, no update running
                return
            c.offline = True
            self.counters["offline_periods"] += 1
            c.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT,
                                                      "Disconnect with will message"))
            self._at(now + s.offline_s, "reconnect", i)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, duration: float | None = None, report: Path | None = None,
            report_every: float = 5.0) -> dict[str, Any]:
        s = self.s
        self.raise_fd_limit(s.devices + 256)
        start = time.time()
        for i in range(s.devices):
            t = start + i / self.connect_per_s
            self._at(t, "connect", i)
            self._at(t + 0.5 + self.rng.uniform(0, s.metrics_s), "metrics", i)
            if s.events_per_s > 0:
                self._at(t + 0.5 + self.rng.expovariate(s.events_per_s), "event", i)
        away = self.rng.sample(range(s.devices), round(s.offline_rate * s.devices))
        for i in away:
            self._at(start + s.devices / self.connect_per_s + self.rng.uniform(
                1.0, max(1.0, s.offline_after_s)), "offline", i)
        end = start + duration if duration else None
        next_misc = next_report = start
        while not self.stop_event.is_set():
            now = time.time()
            if end is not None and now >= end:
                break
            for _ in range(200):  # then read: a burst of timers must not starve the sockets
                if not self.timers or self.timers[0][0] > now:
                    break
                _, _, kind, i = heapq.heappop(self.timers)
                self._timer(kind, i, now)
            wait = min(0.05, max(0.0, (self.timers[0][0] - now) if self.timers else 0.05))
            for key, _ in self.sel.select(wait):
                self.conns[key.data].client.loop_read(50)
            now = time.time()
            if now >= next_misc:
                next_misc = now + MISC_EVERY_S
                for c in self.conns:
                    c.client.loop_misc()
                    if c.client.want_write():
                        c.client.loop_write()
            if report is not None and now >= next_report:
                next_report = now + report_every
                self.write_report(report)
        self._shutdown()
        out = self.report()
        if report is not None:
            self.write_report(report, out)
        return out

    def _shutdown(self) -> None:
        now = time.time()
        for c in self.conns:
            if c.connected:
                for p in c.dev.closing_records(now):
                    self._send(c, p)
                self._send(c, c.dev.stopped(now))
        deadline = time.time() + 10
        while time.time() < deadline and any(c.inflight for c in self.conns if c.connected):
            for key, _ in self.sel.select(0.05):
                self.conns[key.data].client.loop_read(50)
        for c in self.conns:
            if c.connected:
                c.offline = True
                c.client.disconnect()
                c.client.loop_write()

    def report(self) -> dict[str, Any]:
        devices = {c.dev.id: c.dev.report() for c in self.conns}
        dropped: Counter[str] = Counter()
        for d in devices.values():
            dropped.update(d["dropped"])
        return {"at": time.time(), "devices_total": len(self.conns),
                "connected": sum(1 for c in self.conns if c.connected),
                "counters": dict(self.counters), "dropped": dict(dropped),
                "devices": devices}

    def write_report(self, path: Path, doc: dict[str, Any] | None = None) -> None:
        write_json_atomic(path, doc or self.report())


def main(settings: SimSettings, host: str, port: int, *, duration: float | None,
         report: Path | None, connect_per_s: float = 200.0) -> dict[str, Any]:
    sim = Simulator(settings, host, port, connect_per_s=connect_per_s)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sim.stop_event.set())
    log.info("fleet simulate: %d device(s) on %s:%d (pid %d)", settings.devices, host, port,
             os.getpid())
    return sim.run(duration, report, report_every=max(1.0, settings.devices / 1000))
