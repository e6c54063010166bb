"""common/asgi_thread.ServerThread against a real uvicorn on a real socket."""

from __future__ import annotations

import http.client
import socket
import sys
from typing import Any

import pytest

from edge_agent.common.asgi_thread import ServerThread


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hi"})


def test_accepted_connections_have_tcp_nodelay() -> None:
    """Without TCP_NODELAY a kept-alive connection's reply (head and body: two writes) waits
    for the client's delayed ACK, ~40 ms a request: asyncio sets it only on a socket whose
    proto says TCP, so the listening socket must be made with IPPROTO_TCP."""
    st = ServerThread(_hello, "127.0.0.1", 0)
    st.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", st.port, timeout=10)
        for _ in range(2):  # the second request rides the kept-alive connection
            conn.request("GET", "/")
            r = conn.getresponse()
            assert (r.status, r.read()) == (200, b"hi")
        served = list(st.server.server_state.connections)
        assert served, "uvicorn lists no open connection"
        for proto in served:
            sock = proto.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn.close()
    finally:
        assert st.stop(2.0)


BIG = bytes(range(256)) * 8192  # 2 MiB: more than the held writes and the socket's buffers


async def _replies(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/small``: a head and a short body (two writes in uvicorn); ``/big``: 2 MiB in one
    body; ``/parts``: a streamed body of three parts written in separate loop turns."""
    import asyncio

    path = scope["path"]
    if path == "/parts":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = BIG if path == "/big" else b"hello"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _data_segments_in(sock: socket.socket) -> int | None:
    """TCP segments with data this socket received (Linux ``tcp_info.tcpi_data_segs_in``,
    kernel 4.6+); None where the kernel does not say."""
    info = sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_INFO", 11), 256)
    return int.from_bytes(info[152:156], sys.byteorder) if len(info) >= 160 else None


def test_a_reply_head_and_body_go_out_in_one_write() -> None:
    """uvicorn writes a reply's head and body apart; the server sends them as one segment, so
    one TCP segment a reply (counted by the client's kernel) on a kept-alive connection."""
    st = ServerThread(_replies, "127.0.0.1", 0)
    st.start()
    try:
        with socket.create_connection(("127.0.0.1", st.port), timeout=10) as s:
            if _data_segments_in(s) is None:
                pytest.skip("the kernel's tcp_info has no data segment counts (Linux < 4.6)")
            for i in range(30):
                s.sendall(b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n")
                reply = b""
                while not reply.endswith(b"\r\n\r\nhello"):
                    chunk = s.recv(65536)
                    assert chunk, f"request {i}: closed after {reply!r}"
                    reply += chunk
                assert reply.startswith(b"HTTP/1.1 200")
            assert _data_segments_in(s) == 30
    finally:
        assert st.stop(2.0)


def test_big_streamed_and_closing_replies_arrive_whole() -> None:
    """Writes past the held size go out at once (a slow reader still pauses the writer), a
    streamed body's parts come in order, and a reply the server closes after is complete."""
    st = ServerThread(_replies, "127.0.0.1", 0)
    st.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", st.port, timeout=10)
        for _ in range(2):
            conn.request("GET", "/big")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == BIG
            conn.request("GET", "/parts")
            r = conn.getresponse()
            assert r.read() == b"one,two,three"
        conn.close()
        with socket.create_connection(("127.0.0.1", st.port), timeout=10) as s:
            s.sendall(b"GET /small HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            rest = b""
            while chunk := s.recv(65536):
                rest += chunk
            assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"\r\n\r\nhello")
    finally:
        assert st.stop(2.0)
