"""Slow-loris clients on a unix socket: each sends one byte every ``every`` seconds, never the
newline, and connects again as soon as the server drops it (an attacker does)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path


class SlowLoris:
    """``n`` trickling connections to ``path`` on one thread; ``drops`` counts the times the
    server dropped one of them, ``replies`` what it said when it did (b"" for a bare close),
    ``sent`` the bytes sent. Use as a context manager."""

    def __init__(self, path: Path, n: int = 1, every: float = 1.5) -> None:
        self.path = path
        self.n = n
        self.every = every
        self.sent = 0
        self.drops = 0
        self.connects = 0
        self.replies: list[bytes] = []
        self._socks: list[socket.socket | None] = [None] * n
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-loris", daemon=True)

    def __enter__(self) -> SlowLoris:
        for i in range(self.n):
            self._socks[i] = self._connect()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for s in self._socks:
            if s is not None:
                s.close()

    def _connect(self) -> socket.socket | None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(self.path))
        except OSError:
            s.close()
            return None
        self.connects += 1
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for i, s in enumerate(self._socks):
                if s is None or not self._trickle(s):
                    if s is not None:
                        self.drops += 1
                        s.close()
                    self._socks[i] = self._connect()

    def _trickle(self, s: socket.socket) -> bool:
        """One byte; False once the server has answered (refused us) or closed."""
        try:
            self.replies.append(s.recv(4096, socket.MSG_DONTWAIT))
            return False  # an error line or EOF: the server dropped us
        except BlockingIOError:
            pass
        except OSError:
            self.replies.append(b"")
            return False
        try:
            s.send(b"{")
        except OSError:
            return False
        self.sent += 1
        return True
