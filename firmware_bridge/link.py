"""The I/O layer: a pyserial port (any URL) with a reader thread that reopens it when it goes.

Port errors are kept apart from errors in the byte handler (pyserial ``ReaderThread`` lesson):
an exception from the port closes it and starts a reconnect with bounded exponential backoff;
an exception from ``on_bytes`` / ``on_state`` is logged and counted, and the reader carries on.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from typing import Any

import serial
from serial.urlhandler.protocol_socket import Serial as SocketSerial

from .errors import BridgePortError

log = logging.getLogger(__name__)

READ_CHUNK = 4096
READ_WAIT_S = 0.05  # how often the reader looks at its stop flag
SerialFactory = Callable[[str, int], Any]


def open_port(url: str, baudrate: int) -> Any:
    """Open a pyserial URL or device path; raise :class:`BridgePortError` with the cause."""
    try:
        port = serial.serial_for_url(
            url, baudrate=baudrate, timeout=READ_WAIT_S, write_timeout=1.0, do_not_open=True
        )
        if "://" not in url:
            port.exclusive = True  # a second reader would steal the board's answers
        if isinstance(port, SocketSerial):
            port.timeout = 0  # read_some() waits in select() and takes what is there
        port.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise BridgePortError(f"bridge: cannot open serial port {url}: {port_cause(exc)}") from None
    return port


def port_cause(exc: BaseException) -> str:
    """Why a port did not open, once (pyserial repeats the errno and the path in its message),
    with what to do about it."""
    import errno
    import os
    import re

    code = getattr(exc, "errno", None)
    text = str(exc)
    found = re.search(r"\[Errno (\d+)\]|\((\d+), '", text)
    if code is None and found:
        code = int(found.group(1) or found.group(2))
    if "lock" in text or code in (errno.EBUSY, errno.EAGAIN):
        return "in use; is another program (edge-agent run?) using it"
    if code == errno.ENOENT:
        return "no such device; check the path (ls /dev/serial/by-id/) and the cable"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied; add the user to the dialout group (then log in again)"
    if code == errno.ENOTTY:
        return "not a serial device; give a tty (/dev/ttyACM0, /dev/serial/by-id/...) or a URL"
    if isinstance(code, int) and code > 0:
        return f"{os.strerror(code).lower()}; check the device path/URL, the cable and permissions"
    return f"{text}; check the device path/URL, the cable and permissions (dialout group)"


def read_some(port: Any) -> bytes:
    """What has arrived (up to READ_CHUNK), waiting at most about READ_WAIT_S for a first byte."""
    if isinstance(port, SocketSerial):
        # its in_waiting is only ever 0 or 1: one select() + recv per byte would be 10x slower
        ready, _, _ = select.select([port.fileno()], [], [], READ_WAIT_S)
        return bytes(port.read(READ_CHUNK)) if ready else b""
    return bytes(port.read(max(1, min(port.in_waiting, READ_CHUNK))))


class SerialLink:
    """One port, one reader thread, reconnects by itself; ``write`` is thread-safe."""

    def __init__(
        self,
        url: str,
        baudrate: int,
        on_bytes: Callable[[bytes], None],
        on_state: Callable[[bool], None],
        *,
        factory: SerialFactory = open_port,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 2.0,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._on_bytes = on_bytes
        self._on_state = on_state
        self._factory = factory
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._port: Any = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._ever_connected = False
        self.reconnects = 0
        self.handler_errors = 0
        self.write_errors = 0
        self.last_error = ""

    # lifecycle ----------------------------------------------------------------------------
    def start(self, *, wait: bool) -> None:
        """Start the reader; with ``wait`` open the port first and raise if it cannot."""
        if wait:
            self._adopt(self._factory(self.url, self.baudrate))
        self._thread = threading.Thread(target=self._run, name=f"bridge-{self.url}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_port()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # I/O ----------------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Write all of ``data``; False when the port is not open (the reader reconnects)."""
        with self._write_lock:
            port = self._port
            if port is None:
                return False
            try:
                # no flush(): on a pty it is tcdrain(), which waits (without a timeout) for
                # the other side to read; write() has already handed the bytes to the kernel
                port.write(data)
            except (serial.SerialException, OSError) as exc:
                self.write_errors += 1
                self.last_error = f"write failed: {exc}"
                return False
        return True

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            port = self._port
            if port is None:
                try:
                    port = self._factory(self.url, self.baudrate)
                except BridgePortError as exc:
                    self.last_error = str(exc)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self._backoff[1])
                    continue
                delay = self._backoff[0]
                self._adopt(port)
            try:
                data = read_some(port)
            except (serial.SerialException, OSError, TypeError, ValueError) as exc:
                # TypeError/ValueError: pyserial on a descriptor closed under it
                self.last_error = f"port {self.url} lost: {exc}"
                log.warning("bridge: %s; reconnecting", self.last_error)
                self._close_port()
                continue
            if data:
                self._call(self._on_bytes, data)

    def _adopt(self, port: Any) -> None:
        try:  # bytes from before we opened (answers to someone else, old events) are stale
            port.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass
        with self._write_lock:
            self._port = port
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._connected.set()
        self._call(self._on_state, True)

    def _close_port(self) -> None:
        with self._write_lock:
            port, self._port = self._port, None
        if port is None:
            return
        was = self._connected.is_set()
        self._connected.clear()
        try:
            port.close()
        except (serial.SerialException, OSError):
            pass
        if was:
            self._call(self._on_state, False)

    def _call(self, fn: Callable[[Any], None], arg: Any) -> None:
        try:
            fn(arg)
        except Exception:  # handler bugs must not kill the reader
            self.handler_errors += 1
            log.exception("bridge: handler failed")
