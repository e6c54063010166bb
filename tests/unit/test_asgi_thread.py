"""common/asgi_thread.ServerThread against a real uvicorn on a real socket."""

from __future__ import annotations

import http.client
import socket
from typing import Any

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
