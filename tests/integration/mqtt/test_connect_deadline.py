"""Every connection attempt has a deadline ([mqtt] connect_timeout_s): a broker that accepts
and never sends CONNACK, and a TLS handshake trickled through a slow proxy to a real mosquitto."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.mqtt import BrokerError
from edge_agent.mqtt.link import Link, LinkSettings, TLSFiles
from edge_agent.mqtt.testing import Mosquitto, make_tls, tls_listener

MakeBroker = Callable[..., Mosquitto]


class _Server:
    """A TCP listener on 127.0.0.1 whose connections are served by ``handle`` on threads."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.closed_by_client = threading.Semaphore(0)
        self._handle = handle
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        """Ends the accept thread too (an agent test later in this process counts the threads
        left behind)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def servers() -> Iterator[list[_Server]]:
    made: list[_Server] = []
    yield made
    for s in made:
        s.close()


def test_a_broker_that_never_sends_connack_is_dropped_and_retried(
    servers: list[_Server],
) -> None:
    def black_hole(conn: socket.socket) -> None:  # reads CONNECT, answers nothing
        with conn:
            while conn.recv(4096):
                pass
        server.closed_by_client.release()

    server = _Server(black_hole)
    servers.append(server)
    # keepalive 3600 s: without the deadline paho would wait an hour for the CONNACK
    s = LinkSettings(host="127.0.0.1", port=server.port, client_id="deadline", keepalive_s=3600,
                     connect_timeout_s=1.0, reconnect_initial_s=1.0, reconnect_max_s=1.0)
    link = Link(s, subscriptions=[])
    link.start()
    try:
        assert server.closed_by_client.acquire(timeout=60), "the link kept waiting for CONNACK"
        assert "no CONNACK within 1 s" in link.last_error, link.last_error
        assert not link.connected.is_set()
        assert server.closed_by_client.acquire(timeout=60)  # the next attempt: same deadline
        assert server.accepted >= 2
    finally:
        link.stop()


def test_a_trickled_tls_handshake_ends_at_the_deadline(
    tmp_path: Path, mosquitto_factory: MakeBroker, servers: list[_Server]
) -> None:
    t = make_tls(tmp_path / "pki")
    broker = mosquitto_factory(extra=tls_listener(t, require_client_cert=False))

    def trickle(conn: socket.socket) -> None:  # the broker's bytes, one per 2 ms
        up = socket.create_connection(("127.0.0.1", broker.port))

        def forward() -> None:
            try:
                while data := conn.recv(4096):
                    up.sendall(data)
            except OSError:
                pass

        threading.Thread(target=forward, daemon=True).start()
        try:
            while data := up.recv(4096):
                for b in data:
                    conn.sendall(bytes([b]))
                    time.sleep(0.002)
        except OSError:
            pass
        finally:
            conn.close()
            up.close()

    proxy = _Server(trickle)
    servers.append(proxy)

    def link(deadline: float) -> Link:
        s = LinkSettings(host="127.0.0.1", port=proxy.port, client_id=f"tls-{deadline:g}",
                         tls=TLSFiles(t.ca), connect_timeout_s=deadline)
        return Link(s, subscriptions=[])

    slow_ok = link(60.0)
    slow_ok.start(wait=90)  # the proxy works: with time enough the handshake finishes
    slow_ok.stop()
    with pytest.raises(BrokerError, match=r"timed out connecting.*connect_timeout_s"):
        link(0.2).start(wait=30)
