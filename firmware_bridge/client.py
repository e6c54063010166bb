"""The host side: requests correlated by seq with timeout and retries, events to callbacks."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from . import messages as m
from .errors import BridgeClosed, BridgeError, BridgeNack, BridgeProtocolError, BridgeTimeout
from .eventseq import EventSeq
from .framing import MAX_BODY, BadFrame, Deframer, Frame, encode_frame
from .link import SerialFactory, SerialLink, open_port
from .messages import MsgType

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32
MAX_LISTENERS = 16
EventCallback = Callable[[m.Event], None]


@dataclass
class Counters:
    frames_ok: int = 0
    crc_errors: int = 0
    framing_errors: int = 0
    resyncs: int = 0
    timeouts: int = 0
    retries: int = 0
    reconnects: int = 0
    nacks: int = 0
    stray: int = 0
    unexpected: int = 0
    events: int = 0
    event_gaps: int = 0
    seq_resets: int = 0
    callback_errors: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class _Pending:
    __slots__ = ("closed", "done", "frame")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.frame: Frame | None = None
        self.closed = False


class BridgeClient:
    """A connection to one board. Thread-safe; use as a context manager or ``open``/``close``."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        timeout_s: float = 0.5,
        retries: int = 2,
        factory: SerialFactory = open_port,
        backoff_max_s: float = 2.0,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self._deframer = Deframer()
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._seq = int.from_bytes(os.urandom(2), "little") or 1
        self._listeners: list[EventCallback] = []
        self._event_seq = EventSeq()
        self._closed = False
        self._c = Counters()
        self._link = SerialLink(
            url,
            baudrate,
            self._on_bytes,
            self._on_state,
            factory=factory,
            backoff_max_s=backoff_max_s,
        )

    # lifecycle ----------------------------------------------------------------------------
    def open(self, *, wait: bool = True) -> BridgeClient:
        """Start the reader. ``wait``: open the port now and raise BridgePortError if it fails;
        otherwise keep trying in the background (the agent's way)."""
        self._link.start(wait=wait)
        return self

    def close(self) -> None:
        self._closed = True
        self._link.stop()
        with self._lock:
            pending = list(self._pending.values())
        for p in pending:
            p.closed = True
            p.done.set()

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._link.connected

    def wait_connected(self, timeout: float) -> bool:
        return self._link.wait_connected(timeout)

    @property
    def last_error(self) -> str:
        """Why the port last failed to open or was lost ("" if never)."""
        return self._link.last_error

    def add_listener(self, callback: EventCallback) -> None:
        """``callback(event)`` runs on the reader thread for every board event; keep it short."""
        if len(self._listeners) >= MAX_LISTENERS:
            raise BridgeError(f"bridge: more than {MAX_LISTENERS} event listeners")
        self._listeners.append(callback)

    def counters(self) -> dict[str, int]:
        d = self._deframer.counters
        c = self._c
        c.frames_ok, c.crc_errors = d.frames_ok, d.crc_errors
        c.framing_errors, c.resyncs = d.framing_errors, d.resyncs
        c.reconnects = self._link.reconnects
        c.callback_errors = self._link.handler_errors
        return c.to_json()

    # requests -----------------------------------------------------------------------------
    def request(
        self,
        type_: int,
        body: bytes = b"",
        expect: int | None = None,
        *,
        retries: int | None = None,
    ) -> Frame:
        """Send a request, wait for its response; retries with the same seq on timeout.

        ``retries`` overrides the client's setting for this request (e.g. 0 at shutdown)."""
        if self._closed:
            raise BridgeClosed(f"bridge: client for {self.url} is closed")
        name = m.type_name(type_)
        if len(body) > MAX_BODY:
            raise BridgeProtocolError(f"bridge: {name} body of {len(body)} bytes > {MAX_BODY}")
        slot = _Pending()
        with self._lock:
            if len(self._pending) >= MAX_IN_FLIGHT:
                raise BridgeError(f"bridge: more than {MAX_IN_FLIGHT} requests in flight")
            seq = self._next_seq()
            self._pending[seq] = slot
        wire = encode_frame(Frame(type_, seq, body))
        attempts = (self.retries if retries is None else retries) + 1
        try:
            for attempt in range(1, attempts + 1):
                self._link.write(wire)
                if slot.done.wait(self.timeout_s):
                    break
                if attempt < attempts:
                    self._c.retries += 1
            else:
                self._c.timeouts += 1
                state = "" if self.connected else " (the port is disconnected; reconnecting)"
                raise BridgeTimeout(
                    f"bridge: no answer to {name} (seq {seq}) from {self.url} after {attempts} "
                    f"attempts of {self.timeout_s:g} s{state}; check the cable, the port and "
                    "that the board firmware runs"
                )
        finally:
            with self._lock:
                self._pending.pop(seq, None)
        if slot.closed or slot.frame is None:
            raise BridgeClosed(f"bridge: client for {self.url} closed during {name}")
        frame = slot.frame
        if frame.type == MsgType.NACK:
            self._c.nacks += 1
            code, text = m.parse_nack(frame.body)
            raise BridgeNack(f"bridge: board refused {name}: {text}", code)
        if expect is not None and frame.type != expect:
            raise BridgeProtocolError(
                f"bridge: {name} answered with {m.type_name(frame.type)}, expected "
                f"{m.type_name(expect)}"
            )
        return frame

    def _next_seq(self) -> int:
        while True:
            self._seq = (self._seq + 1) & 0xFFFF
            if self._seq and self._seq not in self._pending:
                return self._seq

    # typed requests -----------------------------------------------------------------------
    def hello(self) -> m.HelloInfo:
        return m.parse_hello_info(self.request(MsgType.HELLO, expect=MsgType.HELLO_INFO).body)

    def ping(self, payload: bytes = b"") -> float:
        """Round trip time in seconds; checks the echo."""
        t0 = time.perf_counter()
        frame = self.request(MsgType.PING, payload, expect=MsgType.PONG)
        rtt = time.perf_counter() - t0
        if frame.body != payload:
            raise BridgeProtocolError("bridge: PONG does not echo the PING payload")
        return rtt

    def telemetry(self) -> m.Telemetry:
        return m.parse_telemetry(self.request(MsgType.TELEMETRY_GET, expect=MsgType.TELEMETRY).body)

    def watchdog_configure(self, timeout_ms: int, *, retries: int | None = None) -> None:
        """Arm the board watchdog (``timeout_ms`` 100..600000) or disarm it (0)."""
        body = m.wdt_config_body(timeout_ms)
        self.request(MsgType.WDT_CONFIG, body, expect=MsgType.ACK, retries=retries)

    def watchdog_kick(self) -> None:
        self.request(MsgType.WDT_KICK, expect=MsgType.ACK)

    def gpio_set(self, pin: int, value: int, hold_ms: int = 0) -> None:
        self.request(MsgType.GPIO_SET, m.gpio_set_body(pin, value, hold_ms), expect=MsgType.ACK)

    def gpio_get(self, pin: int) -> tuple[int, int, bool]:
        frame = self.request(MsgType.GPIO_GET, m.gpio_get_body(pin), expect=MsgType.GPIO_STATE)
        return m.parse_gpio_state(frame.body)

    def trigger_configure(
        self, pin: int | None, edge: str = "rising", debounce_ms: int = 0
    ) -> None:
        body = m.trigger_config_body(pin, edge, debounce_ms)
        self.request(MsgType.TRIGGER_CONFIG, body, expect=MsgType.ACK)

    def reset(self) -> None:
        self.request(MsgType.RESET, expect=MsgType.ACK)

    def reset_reason(self) -> tuple[str, int]:
        frame = self.request(MsgType.RESET_REASON_GET, expect=MsgType.RESET_REASON)
        return m.parse_reset_reason(frame.body)

    def sim_input(self, pin: int, value: int) -> None:
        """Drive a simulated input (simulator only; a real board NACKs it)."""
        self.request(MsgType.SIM_INPUT, m.sim_input_body(pin, value), expect=MsgType.ACK)

    def sim_load(self, fps: float) -> None:
        """Tell the simulator the host's frame rate: its board temperature heats with it
        (simulator only; a real board NACKs it)."""
        self.request(MsgType.SIM_LOAD, m.sim_load_body(fps), expect=MsgType.ACK)

    # reader thread ------------------------------------------------------------------------
    def _on_bytes(self, data: bytes) -> None:
        for item in self._deframer.feed(data):
            if isinstance(item, BadFrame):
                log.debug("bridge: bad frame (%s)", item.reason)
                continue
            self._on_frame(item)

    def _on_frame(self, frame: Frame) -> None:
        if m.is_response(frame.type):
            with self._lock:
                slot = self._pending.get(frame.seq)
            if slot is None or slot.done.is_set():
                self._c.stray += 1
                return
            slot.frame = frame
            slot.done.set()
        elif m.is_event(frame.type):
            try:
                event = m.parse_event(frame.type, frame.seq, frame.body)
            except BridgeProtocolError as exc:
                self._c.unexpected += 1
                log.warning("%s", exc)
                return
            self._count_gap(event)
            self._emit(event)
        else:
            self._c.unexpected += 1

    def _count_gap(self, event: m.Event) -> None:
        self._c.events += 1
        step = self._event_seq.observe(event.seq, boot=event.kind == "boot")
        self._c.event_gaps += step.missed
        if step.reset:  # the board reset and its BOOT was lost: say so, as a BOOT would
            self._c.seq_resets += 1
            data = {"from_seq": step.previous, "to_seq": event.seq}
            self._emit(m.Event("reset", event.seq, data))

    def _on_state(self, connected: bool) -> None:
        self._event_seq.forget()
        self._emit(m.Event("link", 0, {"connected": connected, "port": self.url}))

    def _emit(self, event: m.Event) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:
                self._c.callback_errors += 1
                log.exception("bridge: event callback failed on %s", event.kind)
