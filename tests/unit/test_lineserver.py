"""LineServer on real unix sockets: no client can hold up another (issue #10, item 10).

Deadlines here are short (0.4 s) so that the tests see clients dropped; nothing asserts how
fast anything happens, only what happens while a bad client is connected.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.ops.lineserver import Limits, LineServer
from firmware_bridge.testing import wait_for
from tests.support.slow_clients import SlowLoris

LIMITS = Limits(deadline_s=0.4, max_request=64, max_clients=4)


def _refuse(reason: str) -> bytes:
    return json.dumps({"error": reason}).encode() + b"\n"


class Echo:
    """Answers ``{"echo": line}``; ``big`` lines get an answer of ``size`` bytes."""

    def __init__(self, size: int = 16 * 1024 * 1024) -> None:
        self.size = size

    def __call__(self, line: bytes) -> bytes:
        if line == b"boom":
            raise RuntimeError("handler bug")
        if line == b"big":
            return b"x" * self.size + b"\n"
        return json.dumps({"echo": line.decode()}).encode() + b"\n"


def _serve(path: Path, limits: Limits) -> LineServer:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    server = LineServer(listener, Echo(), _refuse, limits)
    server.start()
    return server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, LineServer]]:
    path = tmp_path / "s.sock"
    server = _serve(path, LIMITS)
    yield path, server
    server.stop()


def _connect(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(path))
    return s


def ask(path: Path, line: bytes) -> dict[str, object]:
    with _connect(path) as s:
        s.sendall(line + b"\n")
        reply: dict[str, object] = json.loads(s.makefile("rb").readline())
        return reply


def _read_all(s: socket.socket) -> bytes:
    out = bytearray()
    while chunk := s.recv(65536):
        out += chunk
    return bytes(out)


def test_a_trickling_client_does_not_hold_up_others_and_is_dropped(
    served: tuple[Path, LineServer],
) -> None:
    path, server = served
    # a byte every 50 ms: a per-read timeout would never fire
    with SlowLoris(path, n=1, every=0.05) as loris:
        assert wait_for(lambda: loris.sent >= 2)
        for i in range(3):  # answered while the loris is connected
            assert ask(path, f"hello {i}".encode()) == {"echo": f"hello {i}"}
        # the deadline runs from accept, not from the last byte: the loris is dropped
        assert wait_for(lambda: loris.drops >= 1, timeout=10)
        assert server.counters()["timed_out"] >= 1
        assert json.loads(loris.replies[0]) == {"error": "request not complete within 0.4 s"}
    assert wait_for(lambda: server.counters()["open"] == 0)


def test_more_clients_than_the_limit_evict_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = _serve(path, Limits(deadline_s=60, max_request=64, max_clients=4))
    idle = [_connect(path) for _ in range(7)]
    try:
        assert ask(path, b"still here") == {"echo": "still here"}
        counts = server.counters()  # the 3 extra idle ones and this request evicted one each
        assert counts["evicted"] == 4 and counts["timed_out"] == 0
        for s in idle[:4]:
            assert json.loads(s.recv(4096)) == {"error": "dropped: more than 4 clients"}
        # the 3 newest idle clients keep their slots (the answered one is closed after its reply)
        assert wait_for(lambda: server.counters()["open"] == 3)
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_a_client_that_never_reads_its_answer_is_dropped(
    served: tuple[Path, LineServer],
) -> None:
    path, server = served
    stuck = _connect(path)
    try:
        stuck.sendall(b"big\n")  # 16 MiB answer, never read
        assert ask(path, b"next") == {"echo": "next"}
        assert wait_for(lambda: server.counters()["timed_out"] == 1, timeout=10)
        got = _read_all(stuck)  # what was in the socket buffer, then EOF
        assert 0 < len(got) < 16 * 1024 * 1024 and b"\n" not in got
    finally:
        stuck.close()


def test_oversized_garbage_and_handler_errors_are_answered(
    served: tuple[Path, LineServer],
) -> None:
    path, server = served
    with _connect(path) as s:
        s.sendall(b"y" * 200)  # no newline, over max_request: refused before any newline
        assert json.loads(s.makefile("rb").readline()) == {
            "error": "request larger than 64 bytes"
        }
    reply = ask(path, b"boom")
    assert str(reply["error"]).startswith("internal error: RuntimeError('handler bug')")
    with _connect(path) as s:  # the client closes its end without a newline: answered
        s.sendall(b"half")
        s.shutdown(socket.SHUT_WR)
        assert json.loads(s.makefile("rb").readline()) == {"echo": "half"}
    assert ask(path, b"ok") == {"echo": "ok"}
    counts = server.counters()
    assert counts["too_large"] == 1 and counts["served"] == 4 and counts["timed_out"] == 0


def test_stop_closes_open_clients(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = _serve(path, Limits(deadline_s=60))
    idle = _connect(path)
    assert wait_for(lambda: server.counters()["open"] == 1)
    server.stop()
    assert idle.recv(10) == b""  # closed by stop, not left to its 60 s deadline
    idle.close()
    with pytest.raises(OSError):
        _connect(path)
