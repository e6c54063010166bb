"""A cancel token for one update: set by another thread, seen by a blocked download at once.

:meth:`Cancel.cancel` records why (``reason``: ``cancel``, ``rollback`` or ``shutdown``) and
shuts down every socket the download registered, so a read blocked on a registry that
trickles or stalls returns immediately instead of after its socket timeout.
"""

from __future__ import annotations

import socket
import threading


def describe(reason: str) -> str:
    """What ended the update, for a message: ``cancelled by command`` etc."""
    return {
        "shutdown": "stopped by the agent's shutdown",
        "rollback": "cancelled by a rollback command",
    }.get(reason, "cancelled by command")


class Cancel:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self.reason = ""
        self.detail = ""

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless cancelled first; True if cancelled."""
        return self._event.wait(max(seconds, 0.0))

    def cancel(self, reason: str, detail: str = "") -> None:
        with self._lock:
            if not self._event.is_set():
                self.reason, self.detail = reason, detail
            self._event.set()
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)
            cancelled = self._event.is_set()
        if cancelled:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)
