"""A one-request-per-connection line server on a listening socket (the control socket's engine).

One thread and a selector serve every connection at once, non-blocking, so no client can hold
up another: a client that sends a byte every second, never sends its newline, or never reads
its answer is dropped when its own deadline passes, while the others are answered at once.

- each connection has a deadline (``Limits.deadline_s``) from accept to the last byte of the
  answer, not per read: trickling bytes does not extend it;
- a request is one line of at most ``Limits.max_request`` bytes (longer: refused at once);
- at most ``Limits.max_clients`` connections are open; one more evicts the oldest, so a
  client that just connected is always served even while others hog the slots.

``handle(line) -> bytes`` computes an answer (on the server thread: keep it short);
``refuse(reason) -> bytes`` formats the error line sent, when it can be, to a client that is
dropped. A client gets nothing but the close when it is not reading anymore.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0  # a dropped client is logged once, then counted, at most once a minute


@dataclass(frozen=True)
class Limits:
    deadline_s: float = 2.0
    max_request: int = 4096
    max_clients: int = 16


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    inbuf: bytearray = field(default_factory=bytearray)
    out: memoryview | None = None  # the answer, once computed

    @property
    def answering(self) -> bool:
        return self.out is not None


class LineServer:
    """Serve ``listener`` on a thread of its own until :meth:`stop`.

    ``counters()``: served, timed_out, evicted, too_large, open (connections now)."""

    def __init__(
        self,
        listener: socket.socket,
        handle: Callable[[bytes], bytes],
        refuse: Callable[[str], bytes],
        limits: Limits | None = None,
        *,
        name: str = "line-server",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self._listener = listener
        self._handle = handle
        self._refuse = refuse
        self._clock = clock
        self._name = name
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts = {"served": 0, "timed_out": 0, "evicted": 0, "too_large": 0}
        self._logged_at: dict[str, float] = {}

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._listener.setblocking(False)
        self._wake_r.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            for conn in list(self._conns.values()):
                self._close(conn)
            self._sel.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def counters(self) -> dict[str, int]:
        return {**self._counts, "open": len(self._conns)}

    # the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            due = min((c.deadline for c in self._conns.values()), default=now + 1.0)
            try:
                ready = self._sel.select(max(0.0, min(due - now, 1.0)))
            except OSError:
                return  # the selector was closed under us (stop() after a join timeout)
            for key, mask in ready:
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    return
                else:
                    conn = self._conns.get(key.fd)
                    if conn is not None:
                        self._step(conn, mask)
            self._expire(self._clock())

    def _accept(self) -> None:
        for _ in range(self.limits.max_clients):
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._note("accept", f"cannot accept a client: {exc}")
                return
            if len(self._conns) >= self.limits.max_clients:
                oldest = min(self._conns.values(), key=lambda c: c.deadline)
                self._counts["evicted"] += 1
                self._note(
                    "evicted",
                    f"more than {self.limits.max_clients} clients at once; dropped the oldest",
                )
                self._drop(oldest, f"dropped: more than {self.limits.max_clients} clients")
            sock.setblocking(False)
            conn = _Conn(sock, self._clock() + self.limits.deadline_s)
            self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ)

    def _step(self, conn: _Conn, mask: int) -> None:
        try:
            if conn.answering:
                if mask & selectors.EVENT_WRITE:
                    self._send(conn)
                return
            chunk = conn.sock.recv(self.limits.max_request + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("control client dropped: %s", exc)
            self._close(conn)
            return
        conn.inbuf += chunk
        line, sep, _ = conn.inbuf.partition(b"\n")
        if len(line) > self.limits.max_request:
            self._counts["too_large"] += 1
            self._answer(conn, self._refuse(f"request larger than {self.limits.max_request} bytes"))
        elif sep or not chunk:  # a whole line, or the client closed its end: answer what came
            self._answer(conn, self._safe_handle(bytes(line)))

    def _safe_handle(self, line: bytes) -> bytes:
        try:
            return self._handle(line)
        except Exception as exc:  # a bug in one answer must not end the server
            log.exception("control: answering %r failed", line[:80])
            return self._refuse(f"internal error: {exc!r}")

    def _answer(self, conn: _Conn, data: bytes) -> None:
        conn.out = memoryview(data)
        self._counts["served"] += 1
        self._sel.modify(conn.sock, selectors.EVENT_WRITE)
        self._send(conn)

    def _send(self, conn: _Conn) -> None:
        assert conn.out is not None
        try:
            while conn.out:
                n = conn.sock.send(conn.out)
                conn.out = conn.out[n:]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("control client went away before its answer: %s", exc)
        self._close(conn)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            self._counts["timed_out"] += 1
            what = "read its answer" if conn.answering else "send a whole request line"
            self._note(
                "timed_out",
                f"a client did not {what} within {self.limits.deadline_s:g} s; dropped it",
            )
            self._drop(conn, f"request not complete within {self.limits.deadline_s:g} s")

    def _drop(self, conn: _Conn, reason: str) -> None:
        if not conn.answering:
            try:  # best effort: one send on a non-blocking socket, never waits
                conn.sock.send(self._refuse(reason))
            except OSError:
                pass
        self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _note(self, cause: str, message: str) -> None:
        """Log a dropped client once, then at most every LOG_EVERY_S with the count so far."""
        now = self._clock()
        last = self._logged_at.get(cause)
        if last is not None and now - last < LOG_EVERY_S:
            return
        self._logged_at[cause] = now
        total = self._counts.get(cause)
        suffix = f" ({total} so far)" if total and total > 1 else ""
        log.warning("control socket: %s%s", message, suffix)
