"""Native libraries' lines on file descriptor 2 go to the logger, throttled (issue #10).

FFmpeg inside OpenCV writes ``[tcp @ 0x55d0…] Connection to tcp://…:554 failed: Connection
refused`` straight to fd 2 from C, once per reconnect attempt, and hundreds of ``[mjpeg @ …]``
lines on a damaged stream; OpenCV adds ``[ WARN:0@1.2] global cap_….cpp …`` lines. None of that
may reach the technician raw. While ``edge-agent run`` runs, :class:`StderrRelay` makes fd 2 a
pipe read by a thread: each line becomes a log record, throttled per cause (the line with its
addresses and numbers blanked, :mod:`edge_agent.common.throttle`):

- FFmpeg's ``[component @ 0x…] text`` and OpenCV's ``[ WARN:…]`` lines: ``edge_agent.camera``
  (WARNING; OpenCV's INFO/DEBUG lines at DEBUG);
- the TFLite runtime's ``INFO:``/``WARNING:``/``ERROR:`` lines: ``edge_agent.inference`` (its
  INFO at DEBUG);
- anything else: ``edge_agent.native`` (WARNING).

The agent's own log handler and ``sys.stderr`` write to a duplicate of the original fd 2, so
they do not go round through the pipe; journald still sees the same stream. The pipe's write
end is non-blocking: if the relay thread fell behind by a full pipe (64 KiB), a native library
loses that line instead of blocking the camera thread. The pure part is :func:`classify`.
"""

from __future__ import annotations

import logging
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from ..common.throttle import DEFAULT_INTERVAL_S, ThrottledLog, cause_of
from . import logging_setup

MAX_LINE = 4096

_FFMPEG = re.compile(r"^\[(?P<who>[\w.-]+) @ (?:0x)?[0-9a-fA-F]+\]\s*(?P<text>.*)$")
_OPENCV = re.compile(r"^\[\s*(?P<level>WARN|ERROR|INFO|DEBUG|VERBOSE)[^\]]*\]\s*(?P<text>.*)$")
_RUNTIME = re.compile(r"^(?P<level>INFO|WARNING|ERROR|VERBOSE): (?P<text>.*)$")
_LEVELS = {
    "WARN": logging.WARNING, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
    "INFO": logging.DEBUG, "DEBUG": logging.DEBUG, "VERBOSE": logging.DEBUG,
}


def classify(line: str) -> tuple[str, int, str] | None:
    """(logger name, level, message) for one native line; None for a blank one."""
    line = line.strip()
    if not line:
        return None
    m = _FFMPEG.match(line)
    if m:
        return "edge_agent.camera", logging.WARNING, f"ffmpeg {m['who']}: {m['text']}"
    m = _OPENCV.match(line)
    if m:
        return "edge_agent.camera", _LEVELS[m["level"]], f"opencv: {m['text']}"
    m = _RUNTIME.match(line)
    if m:
        return "edge_agent.inference", _LEVELS[m["level"]], f"runtime: {m['text']}"
    return "edge_agent.native", logging.WARNING, f"native: {line}"


def native_why(lines: list[str], limit: int = 2) -> str:
    """FFmpeg's/OpenCV's lines captured while a camera was opened, as one short reason for a
    one-line error (``ffmpeg tcp: Connection to tcp://…:554 failed: Connection refused``)."""
    said = [m for name, _lvl, m in filter(None, map(classify, lines)) if name.endswith("camera")]
    return "; ".join(list(dict.fromkeys(said))[:limit])[:300]


class StderrRelay:
    """fd 2 -> pipe -> thread -> logging, between :meth:`start` and :meth:`stop`."""

    def __init__(
        self, interval_s: float = DEFAULT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.lines = 0
        self._logs: dict[str, ThrottledLog] = {}
        self._saved: int | None = None
        self._read_fd: int | None = None
        self._stream: TextIO | None = None
        self._old_stderr: TextIO | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> bool:
        """Redirect; False (nothing changed) when there is no usable fd 2."""
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return False
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        os.dup2(write_fd, 2)  # fd 2 stays inheritable, like any stderr
        os.close(write_fd)
        self._saved, self._read_fd = saved, read_fd
        self._stream = open(  # lives until stop()
            saved, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
        )
        self._old_stderr = sys.stderr
        sys.stderr = self._stream
        logging_setup.retarget(self._stream)
        self._thread = threading.Thread(target=self._run, name="stderr-relay", daemon=True)
        self._thread.outlives_agent = True  # type: ignore[attr-defined]  # started before it
        self._thread.start()
        return True

    def stop(self, timeout: float = 1.0) -> None:
        """Give fd 2 back, log what is left in the pipe and the throttled counts."""
        if self._saved is None:
            return
        assert self._stream is not None and self._old_stderr is not None
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)  # our end of the pipe closes: the thread reads to EOF
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        sys.stderr = self._old_stderr
        logging_setup.retarget(self._old_stderr)
        for tlog in self._logs.values():
            tlog.flush(final=True)
        self._stream.close()
        os.close(self._saved)
        if self._read_fd is not None and (self._thread is None or not self._thread.is_alive()):
            os.close(self._read_fd)
        self._saved = self._read_fd = None

    def __enter__(self) -> StderrRelay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        fd = self._read_fd
        assert fd is not None
        buf = b""
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 1.0)
                chunk = os.read(fd, 65536) if ready else None
            except OSError:
                break
            if chunk == b"":
                break  # EOF: stop() gave fd 2 back (and no child holds the pipe)
            if chunk:
                buf += chunk.replace(b"\r", b"\n")
                *done, buf = buf.split(b"\n")
                if len(buf) > MAX_LINE:
                    done.append(buf)
                    buf = b""
                for raw in done:
                    self.line(raw.decode("utf-8", "replace")[:MAX_LINE])
            elif self._stop.is_set():
                break  # a child still holds the pipe open: stop waiting for its EOF
            for tlog in list(self._logs.values()):
                tlog.flush()
        if buf:
            self.line(buf.decode("utf-8", "replace")[:MAX_LINE])

    def line(self, text: str) -> None:
        """Log one native line (throttled per cause)."""
        got = classify(text)
        if got is None:
            return
        name, level, message = got
        self.lines += 1
        tlog = self._logs.get(name)
        if tlog is None:
            tlog = self._logs[name] = ThrottledLog(
                logging.getLogger(name), self.interval_s, clock=self.clock
            )
        tlog.log(level, cause_of(message), message)
