"""BridgeComponent: the firmware bridge inside the agent (issue #6).

- board telemetry (power W, board/accelerator temperature, fan, utilisation) in
  ``snapshot["bridge"]`` via ``contribute``;
- the board watchdog kicked **only while the pipeline makes progress** (:class:`ProgressGate`
  over a progress-counter callable, by default ``agent.pipeline.counters()["processed"]``), so
  a stalled agent gets reset by the board; disarmed on a graceful stop;
- output rules from inference results (:class:`OutputRules`: label + score -> GPIO pin for
  hold_ms; the board ends the hold itself, so a dead agent never leaves a relay on);
- a trigger input requests a capture: ``agent.request_capture(reason)`` when the agent has it,
  else the newest annotated frame (``agent.pipeline.save_snapshots``) is saved under
  ``<state_dir>/captures/``; an MQTT event is published when MQTT runs. Captures are bounded
  (:class:`.captures.CaptureStore`, ``[captures]``): over the rate they are refused
  and counted (``captures_rate_limited``), beyond ``max_count``/``max_bytes`` the oldest are
  deleted (``captures_pruned``); a capture that cannot be written (disk full) is counted
  (``capture_errors``) and logged once per cause.

All serial I/O happens on one worker thread; ``on_result`` and ``contribute`` never block.
``check_bridge(config)`` is the doctor's probe: the port opens and the board answers HELLO.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_bridge import BridgeClient, BridgeError, BridgeNack, Event, HelloInfo, Telemetry

from ..common.throttle import ThrottledLog, cause_of
from ..component import Component
from ..config import BridgeConfig, Config
from ..errors import EdgeAgentError
from .captures import CaptureLimits, CaptureStore
from .rules import (
    OutputRules,
    ProgressGate,
    labels_and_scores,
    uptime_went_back,
)

log = logging.getLogger("edge_agent.bridge")

QUEUE_SIZE = 64
NACK_STATE = 4  # PROTOCOL.md: "state", e.g. a kick while the watchdog is off
Progress = Callable[[], "int | None"]


def telemetry_fields(t: Telemetry) -> dict[str, Any]:
    return {
        "power_w": t.power_w,
        "board_temp_c": t.board_temp_c,
        "accel_temp_c": t.accel_temp_c,
        "temperature_c": t.board_temp_c,
        "rail_v": t.rail_v,
        "rail_a": t.rail_a,
        "fan_rpm": t.fan_rpm,
        "accel_util": t.accel_util,
        "uptime_s": t.uptime_s,
        "bitstream": f"0x{t.bitstream:08x}",
    }


# --- the component ---------------------------------------------------------------------------


def _pipeline_processed(agent: Any) -> int | None:
    """The agent's watchdog counter: processed frames, moving too while the camera reader
    waits for a camera that is not there yet (``Agent.progress``)."""
    pipeline = getattr(agent, "pipeline", None)
    if pipeline is None:
        return None
    progress = getattr(agent, "progress", None)
    if callable(progress):
        return int(progress())
    value = pipeline.counters().get("processed")
    return int(value) if value is not None else None


class BridgeComponent(Component):
    name = "bridge"

    def __init__(
        self,
        config: Config | BridgeConfig,
        *,
        progress: Progress | None = None,
        publish: Callable[[str, dict[str, Any]], int] | None = None,
        client: BridgeClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``config``: the agent's Config (its ``bridge`` section is used) or a BridgeConfig.
        ``progress``: a callable returning a counter that moves while the agent works
        (default: the pipeline's processed count). ``publish(stream, payload)``: where a
        trigger's capture is announced (MQTT's publish, wired by :mod:`edge_agent.app`)."""
        self.publish = publish
        if isinstance(config, Config):
            config = config.bridge
        self.config = config
        self._progress = progress
        self._client = client
        self._clock = clock
        self._gate = ProgressGate(config.stall_s)
        self._rules = OutputRules(config.rules)
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._agent: Any = None
        self._lock = threading.Lock()
        self._configured = False
        self._info: HelloInfo | None = None
        self._telemetry: Telemetry | None = None
        self._telemetry_at: float | None = None
        self._last_error = ""
        self._captures: CaptureStore | None = None
        self._uptime_baseline: float | None = None  # board uptime at the last poll
        self._boots = 0  # BOOT/RESET events seen: a poll that spans one has a stale uptime
        self._seq_reset_counted = False  # a reset seen from the uptime; its seq step follows
        self._log = ThrottledLog(log, clock=clock)  # errors and withheld kicks repeat
        self.stats = {
            "kicks": 0,
            "kicks_withheld": 0,
            "board_resets": 0,
            "triggers": 0,
            "captures": 0,
            "captures_rate_limited": 0,
            "captures_pruned": 0,
            "capture_errors": 0,
            "rule_fires": 0,
            "actions_dropped": 0,
            "errors": 0,
        }

    # Component API ------------------------------------------------------------------------
    def start(self, agent: Any) -> None:
        self._agent = agent
        cfg = getattr(agent, "config", None)
        if isinstance(cfg, Config):
            q = cfg.captures
            self._captures = CaptureStore(
                cfg.device.state_dir / "captures",
                CaptureLimits(q.max_count, q.max_bytes, q.per_minute, q.burst),
                clock=self._clock,
            )
        else:
            self._captures = CaptureStore(Path("captures"), clock=self._clock)  # rate limit only
        if self._progress is None:
            self._progress = lambda: _pipeline_processed(agent)
        c = self.config
        if self._client is None:
            self._client = BridgeClient(
                c.port, baudrate=c.baudrate, timeout_s=c.timeout_s, retries=c.retries
            )
        self._client.add_listener(self._on_event)
        self._client.open(wait=False)  # reconnects in the background; never blocks the agent
        self._thread = threading.Thread(target=self._worker, name="bridge-worker", daemon=True)
        self._thread.start()

    def contribute(self, snapshot: dict[str, Any]) -> None:
        snapshot["bridge"] = self.status()

    def on_result(self, result: Any) -> None:
        if not self._rules.rules:
            return
        for action in self._rules.evaluate(labels_and_scores(result), self._clock()):
            self._enqueue("gpio", action)

    def stop(self) -> None:
        try:
            self._queue.put(None, timeout=0.2)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(1.0)
        self._log.flush(final=True)
        client = self._client
        if client is None:
            return
        if self.config.watchdog_timeout_ms and client.connected:
            try:  # a graceful stop must not end in a watchdog reset; one attempt, no retries
                client.watchdog_configure(0, retries=0)
            except BridgeError as exc:
                log.warning("bridge: could not disarm the board watchdog: %s", exc)
        client.close()

    # status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            info, tel, at = self._info, self._telemetry, self._telemetry_at
            out: dict[str, Any] = {
                "connected": bool(self._client and self._client.connected),
                "configured": self._configured,
                "port": self.config.port,
                **self.stats,
            }
        if info is not None:
            out.update(
                board=info.name,
                firmware=info.firmware,
                reset_reason=info.reset_reason,
                boot_count=info.boot_count,
            )
        if tel is not None and at is not None:
            out.update(telemetry_fields(tel))
            out["telemetry_age_s"] = round(self._clock() - at, 3)
        out["watchdog_ms"] = self.config.watchdog_timeout_ms
        out["stalled_s"] = round(self._gate.stalled_for(self._clock()), 3)
        if self._client is not None:
            out["link"] = self._client.counters()
        last = self._last_error
        if self._client is not None and not out["connected"] and self._client.last_error:
            last = self._client.last_error
        if last:
            out["last_error"] = last
        return out

    # worker -------------------------------------------------------------------------------
    def _enqueue(self, kind: str, item: Any) -> None:
        try:
            self._queue.put_nowait((kind, item))
        except queue.Full:
            self.stats["actions_dropped"] += 1

    def _worker(self) -> None:
        wdt_ms = self.config.watchdog_timeout_ms
        kick_every = wdt_ms / 3000 if wdt_ms else None
        next_tel = next_kick = 0.0
        while True:
            self._log.flush()
            now = self._clock()
            due = min(next_tel, next_kick) if kick_every else next_tel
            wait = max(0.0, due - now) if self._configured else 0.1
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = ("tick", None)
            if item is None:
                return
            try:
                self._handle(item)
                if self._client is None or not self._client.connected:
                    continue
                if not self._configured:
                    self._setup()
                now = self._clock()
                if kick_every and now >= next_kick:
                    next_kick = now + kick_every
                    self._kick(now)
                if now >= next_tel:
                    next_tel = now + self.config.telemetry_interval_s
                    self._poll_telemetry()
            except BridgeError as exc:
                self._error(exc)
            except Exception as exc:  # a bug or a failing hook must not end the worker
                self.stats["errors"] += 1
                log.exception("bridge: worker step failed: %r", exc)

    def _setup(self) -> None:
        assert self._client is not None
        c = self.config
        info = self._client.hello()
        if c.trigger_pin is not None:
            self._client.trigger_configure(c.trigger_pin, c.trigger_edge, c.trigger_debounce_ms)
        if c.watchdog_timeout_ms:
            self._client.watchdog_configure(c.watchdog_timeout_ms)
        with self._lock:
            self._info = info
            self._configured = True
        log.info(
            "bridge: %s on %s, firmware %s, last reset: %s",
            info.name,
            c.port,
            info.firmware,
            info.reset_reason,
        )

    def _kick(self, now: float) -> None:
        assert self._client is not None and self._progress is not None
        if self._gate.should_kick(self._progress(), now):
            try:
                self._client.watchdog_kick()
            except BridgeNack as exc:
                if exc.code != NACK_STATE or not self._configured:
                    raise
                # we armed it, the board says it is off: its RAM was cleared by a reset
                self._inferred_reset("it refused a watchdog kick: its watchdog is off")
                return
            self.stats["kicks"] += 1
        else:
            self.stats["kicks_withheld"] += 1
            self._log.warn(
                "bridge: no progress, kick withheld",
                f"bridge: pipeline made no progress for {self._gate.stalled_for(now):.1f} s; "
                "not kicking the board watchdog (the board resets after "
                f"{self.config.watchdog_timeout_ms} ms)",
            )

    def _poll_telemetry(self) -> None:
        assert self._client is not None
        with self._lock:
            boots = self._boots
        tel = self._client.telemetry()
        with self._lock:
            self._telemetry = tel
            self._telemetry_at = self._clock()
            if boots != self._boots:
                # a BOOT came in after this answer was sent (the reader handed the answer over,
                # then read the BOOT before this thread ran): its uptime is from before the
                # reset, so it is no baseline, and the reset is counted once, from the BOOT
                self._uptime_baseline = None
                return
            before, self._uptime_baseline = self._uptime_baseline, tel.uptime_s
        # the serial stream is ordered: a BOOT sent before this answer reached _on_event (which
        # clears the baseline) before the answer did, so a reset is never counted twice
        if before is not None and self._configured and uptime_went_back(before, tel.uptime_s):
            went = f"its uptime went back from {before:.1f} s to {tel.uptime_s:.1f} s"
            self._inferred_reset(went)

    def _inferred_reset(self, evidence: str) -> None:
        """A reset seen on the worker (no BOOT came): count it, set the board up again."""
        self._seq_reset_counted = True  # the next event's seq goes back: the same reset
        with self._lock:
            self._uptime_baseline = None
            self._configured = False
        self._board_reset(f"{evidence}; the BOOT event was lost")

    def _handle(self, item: tuple[str, Any]) -> None:
        kind, data = item
        if kind == "gpio":
            assert self._client is not None
            self._client.gpio_set(data.pin, data.value, data.hold_ms)
            self.stats["rule_fires"] += 1
        elif kind == "trigger":
            self._capture(data)
        elif kind == "reconfigure":
            with self._lock:
                self._configured = False

    def _error(self, exc: BridgeError) -> None:
        self.stats["errors"] += 1
        msg = str(exc)
        self._log.warn(cause_of(msg), msg)
        self._last_error = msg

    # events (reader thread: hand work to the worker) ---------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.kind == "reset" and self._seq_reset_counted:
            self._seq_reset_counted = False  # already counted from the board's uptime
            return
        if event.kind != "link":
            self._seq_reset_counted = False
        if event.kind in ("boot", "reset"):
            with self._lock:
                self._boots += 1
                self._uptime_baseline = None
                was_configured, self._configured = self._configured, False
            if not was_configured:
                return  # a boot before we set the board up needs nothing more
            if event.kind == "boot":
                why = (
                    f"reason: {event.data.get('reset_reason')}, "
                    f"boot {event.data.get('boot_count')}"
                )
            else:  # the client saw the event seq go backwards: the BOOT event was lost
                why = (
                    f"its event seq went back from {event.data.get('from_seq')} to "
                    f"{event.data.get('to_seq')}; the BOOT event was lost"
                )
            self._board_reset(why)
            self._enqueue("reconfigure", None)
        elif event.kind == "link":
            if not event.data.get("connected"):
                self._enqueue("reconfigure", None)
        elif event.kind == "trigger":
            self.stats["triggers"] += 1
            self._enqueue("trigger", event)

    def _board_reset(self, why: str) -> None:
        self.stats["board_resets"] += 1
        log.warning("bridge: the board reset (%s); setting it up again", why)

    def _capture(self, event: Event) -> None:
        agent = self._agent
        store = self._captures
        reason = f"bridge trigger pin {event.data.get('pin')} #{event.data.get('count')}"
        if store is not None and not store.admit():
            self.stats["captures_rate_limited"] += 1
            self._log.warn(
                "bridge: captures over the limit",
                f"bridge: trigger captures over the limit ({store.limits.per_minute:g} per "
                f"minute, burst {store.limits.burst}); "
                f"{self.stats['captures_rate_limited']} refused so far",
            )
            return
        hook = getattr(agent, "request_capture", None)
        saved: list[str] = []
        if callable(hook):
            hook(reason)
        else:
            save = getattr(getattr(agent, "pipeline", None), "save_snapshots", None)
            cfg = getattr(agent, "config", None)
            if callable(save) and isinstance(cfg, Config) and store is not None:
                folder = store.new_folder(int(event.data.get("count") or 0))
                try:
                    self.stats["captures_pruned"] += store.prune(room=1)
                    saved = [str(p) for p in save(folder, last=1)]
                    self.stats["captures_pruned"] += store.prune()
                except OSError as exc:  # disk full: counted, logged once per cause
                    store.discard(folder)
                    self.stats["capture_errors"] += 1
                    self._log.log(
                        logging.ERROR, f"bridge: capture not saved: {cause_of(str(exc))}",
                        f"bridge: capture not saved ({reason}): {exc}",
                    )
                    return
        self.stats["captures"] += 1
        if self.publish is not None:
            try:
                self.publish("events", {"kind": "trigger", "reason": reason, "files": saved})
            except EdgeAgentError:
                pass  # disk full: counted by the MQTT component, the loss becomes a gap record
        log.info("bridge: capture requested (%s) %s", reason, " ".join(saved))


def check_bridge(config: Config | BridgeConfig) -> tuple[bool, str]:
    """The doctor's probe: the port opens and the board answers HELLO."""
    b = config.bridge if isinstance(config, Config) else config
    try:
        with BridgeClient(
            b.port, baudrate=b.baudrate, timeout_s=b.timeout_s, retries=b.retries
        ).open(wait=True) as client:
            info = client.hello()
    except BridgeError as exc:
        return False, str(exc)
    return True, (
        f"{b.port}: board {info.name}, firmware {info.firmware}, bitstream "
        f"0x{info.bitstream:08x}, last reset {info.reset_reason}"
    )
