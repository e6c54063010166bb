"""``POST /v1/infer`` answered in uvicorn's HTTP protocol (edge_agent/api/infer_protocol.py):
real uvicorn on httptools, real sockets, the real model; every rule of the endpoint on the
fast path, requests it leaves to ASGI, and the fallback without httptools.

The API's own server (:class:`ServerThread` with the app and the protocol the agent gives it)
around a small device with a real :class:`InferPool`; the agent itself serves the same in
tests/integration/test_http_api.py.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.api.component import Limits
from edge_agent.api.infer import InferPool
from edge_agent.api.infer_protocol import infer_protocol
from edge_agent.api.routes import create_app
from edge_agent.common.asgi_thread import ServerThread
from tests.support.helpers import DATA, MODELS, wait_until

pytest.importorskip(
    "httptools",
    reason="the protocol serves /v1/infer only on uvicorn's httptools parser, a base dependency "
    "on x86_64 and aarch64; without it (armv7) every request takes the ASGI path, which "
    "tests/integration/test_http_api.py covers",
)

PHOTO = (DATA / "astronaut.jpg").read_bytes()
TOKEN = "s3cret-token-for-the-protocol-0123"
MAX_BODY = 200_000


class Device:
    """What the app and the protocol read of the HTTP component."""

    version = "test"

    def __init__(self, runner: Any, max_pending: int = 2) -> None:
        self.limits = Limits(MAX_BODY, 1, 1.0)
        self.stopping = threading.Event()
        self.model: Any = runner
        self.pool = InferPool(lambda: self.model, workers=1, max_pending=max_pending,
                              inline_max_pixels=500_000)

    def model_info(self) -> dict[str, Any]:
        return {"name": "blazeface_int8"}


class Server:
    def __init__(self, device: Device, token: str | None, http: str = "auto") -> None:
        self.device = device
        self.classes: list[type[Any]] = []

        def protocol(base: type[Any]) -> type[Any]:
            cls = infer_protocol(base, device, token)
            self.classes.append(cls)
            return cls

        self.thread = ServerThread(create_app(device, token), "127.0.0.1", 0, http=http,
                                   protocol=protocol)
        self.thread.start()
        tasks = self.thread.server.server_state.tasks
        device.pool.others = lambda: len(tasks) - 1  # as the component counts them
        self.port = self.thread.port

    @property
    def served(self) -> int:
        """Replies the protocol wrote itself."""
        return int(getattr(self.classes[0], "served", 0))

    def close(self) -> None:
        self.thread.stop(2.0)
        self.device.pool.close()


@pytest.fixture(scope="module")
def runner() -> Any:
    from edge_agent.inference import Runner

    return Runner.open(MODELS / "blazeface_int8.tflite")


@pytest.fixture
def server(runner: Any) -> Iterator[Server]:
    s = Server(Device(runner), None)
    try:
        yield s
    finally:
        s.close()


def post(path: str, body: bytes, ctype: str = "image/jpeg", *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


class Conn:
    """One kept-alive connection; replies read by their Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        status = int(lines[0].split()[1])
        if status == 100:
            return status, headers, b""
        n = int(headers["content-length"])
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self) -> bool:
        """The server closed the connection (after what was read)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _more(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def faces(body: bytes) -> list[str]:
    return [d["label"] for d in json.loads(body)["detections"]]


def test_the_protocol_answers_infer_itself_kept_alive(server: Server) -> None:
    c = Conn(server.port)
    try:
        for _ in range(4):
            c.send(post("/v1/infer?top_k=1", PHOTO))
            status, headers, body = c.reply()
            assert status == 200 and headers["content-type"] == "application/json", body
            assert headers["content-length"] == str(len(body)) and "date" in headers
            assert faces(body) == ["face"]
            doc = json.loads(body)
            assert doc["model"]["name"] == "blazeface_int8" and doc["image"]["width"] == 512
        assert server.served == 4
        # the first built the interpreter on a pool thread (as a task); the rest ran inline
        assert server.device.pool.counts["inline"] == 3 and server.device.pool.counts["ok"] == 4
        c.send(get("/healthz"))  # anything else: ASGI, on the same connection
        status, _, body = c.reply()
        assert status == 200 and json.loads(body)["ok"] is True
        assert server.served == 4
    finally:
        c.close()


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    c = Conn(server.port)
    try:
        c.send(post("/v1/infer", PHOTO) + get("/healthz") + post("/v1/infer?top_k=1", PHOTO)
               + post("/v1/infer", b"hello", "text/plain") + get("/healthz"))
        got = [c.reply() for _ in range(5)]
        assert [g[0] for g in got] == [200, 200, 200, 415, 200]
        assert faces(got[0][2]) == ["face"] and faces(got[2][2]) == ["face"]
        assert json.loads(got[1][2])["ok"] is True and "detail" in json.loads(got[3][2])
        c.send(post("/v1/infer", PHOTO))  # still served after the pipeline
        assert c.reply()[0] == 200
    finally:
        c.close()


def test_every_refusal_of_the_endpoint_on_the_fast_path(runner: Any) -> None:
    s = Server(Device(runner, max_pending=1), TOKEN)
    auth = f"Authorization: Bearer {TOKEN}"
    try:
        c = Conn(s.port)
        cases = [
            (post("/v1/infer", PHOTO), 401),
            (post("/v1/infer", PHOTO, "image/jpeg", "Authorization: Bearer wrong"), 401),
            (post("/v1/infer?threshold=2", PHOTO, "image/jpeg", auth), 422),
            (post("/v1/infer?top_k=x", PHOTO, "image/jpeg", auth), 422),
            (post("/v1/infer", b"hello", "text/plain", auth), 415),
            (post("/v1/infer", b"\0" * (MAX_BODY + 1), "image/jpeg", auth), 413),
            (post("/v1/infer", b"", "image/jpeg", auth), 422),
            (post("/v1/infer", PHOTO[: len(PHOTO) // 2], "image/jpeg", auth), 422),
            (post("/v1/infer", b"\x89PNG\r\n\x1a\nnot really", "image/png", auth), 422),
            (post("/v1/infer", PHOTO, "image/jpeg", auth), 200),
        ]
        for request, want in cases:
            c.send(request)  # one connection: each refusal keeps it alive
            status, headers, body = c.reply()
            assert status == want, (request[:80], status, body)
            detail = json.loads(body).get("detail")
            assert want == 200 or (isinstance(detail, str) and detail), body
            if want == 401:
                assert headers["www-authenticate"] == "Bearer"
        # a body over the limit while it streams (chunked: no Content-Length to refuse it by)
        c.send(b"POST /v1/infer HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
               + auth.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            c.send(b"%x\r\n" % 65536 + b"\0" * 65536 + b"\r\n")
        c.send(b"0\r\n\r\n")
        status, _, body = c.reply()
        assert status == 413 and "max_body_bytes" in json.loads(body)["detail"]
        # every slot taken: 429 with Retry-After
        s.device.pool.admit()
        try:
            c.send(post("/v1/infer", PHOTO, "image/jpeg", auth))
            status, headers, body = c.reply()
            assert status == 429 and headers["retry-after"] == "1", body
        finally:
            s.device.pool.release()
        # no model loaded: 503
        s.device.model = None
        c.send(post("/v1/infer", PHOTO, "image/jpeg", auth))
        status, _, body = c.reply()
        assert status == 503 and "no model" in json.loads(body)["detail"]
        s.device.model = runner
        c.send(post("/v1/infer", PHOTO, "image/jpeg", auth))
        assert c.reply()[0] == 200
        c.close()
        assert s.served == len(cases) + 4
        counts = s.device.pool.counts
        assert counts["busy"] == 1 and counts["failed"] == 0 and counts["ok"] == 2
        assert counts["bad_input"] == 8  # the seven 4xx of the cases, the streamed 413
        assert s.device.pool._in_flight == 0
    finally:
        s.close()


def test_large_images_run_on_the_pool_and_multipart_in_a_task(server: Server) -> None:
    img = cv2.resize(cv2.imdecode(np.frombuffer(PHOTO, np.uint8), cv2.IMREAD_COLOR), (800, 800))
    big = cv2.imencode(".jpg", img)[1].tobytes()
    assert len(big) < MAX_BODY
    boundary = "xYz"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
                 f"filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + PHOTO \
        + f"\r\n--{boundary}--\r\n".encode()
    c = Conn(server.port)
    try:
        for _ in range(2):
            c.send(post("/v1/infer", PHOTO))
            assert c.reply()[0] == 200
        inline = server.device.pool.counts["inline"]
        c.send(post("/v1/infer", big))  # 0.64 MP, over inline_max_pixels
        status, _, body = c.reply()
        assert status == 200 and json.loads(body)["image"]["width"] == 800
        assert server.device.pool.counts["inline"] == inline
        # multipart: read in a task (python-multipart's parser), the part then run as usual
        c.send(post("/v1/infer?top_k=1", multipart, f"multipart/form-data; boundary={boundary}"))
        status, _, body = c.reply()
        assert status == 200 and faces(body) == ["face"], body
        assert server.served == 4
    finally:
        c.close()


def test_a_client_gone_mid_body_gives_its_slot_back(runner: Any) -> None:
    s = Server(Device(runner, max_pending=1), None)
    try:
        for _ in range(3):
            c = Conn(s.port)
            request = post("/v1/infer", PHOTO)
            c.send(request[: len(request) // 2])
            assert wait_until(lambda: s.device.pool._in_flight == 1, 10)
            c.close()
            assert wait_until(lambda: s.device.pool._in_flight == 0, 10)
        c = Conn(s.port)  # the one slot is free: served
        c.send(post("/v1/infer", PHOTO))
        assert c.reply()[0] == 200
        c.close()
        assert s.device.pool.counts["busy"] == 0
    finally:
        s.close()


def test_connection_close_http_1_0_and_expect_100_continue(server: Server) -> None:
    for request in (post("/v1/infer", PHOTO, "image/jpeg", "Connection: close"),
                    post("/v1/infer", PHOTO).replace(b"HTTP/1.1", b"HTTP/1.0", 1)):
        c = Conn(server.port)
        try:
            c.send(request)
            status, headers, _ = c.reply()
            assert status == 200 and headers["connection"] == "close" and c.closed()
        finally:
            c.close()
    c = Conn(server.port)
    try:
        request = post("/v1/infer", PHOTO, "image/jpeg", "Expect: 100-continue")
        head, body = request.split(b"\r\n\r\n", 1)
        c.send(head + b"\r\n\r\n")
        assert c.reply()[0] == 100  # asked for the body before it is sent
        c.send(body)
        status, _, body = c.reply()
        assert status == 200 and faces(body) == ["face"]
    finally:
        c.close()
    assert server.served == 3


def test_requests_the_protocol_leaves_to_asgi_are_answered_alike(server: Server) -> None:
    c = Conn(server.port)
    try:
        c.send(post("/v1/%69nfer?top_k=1", PHOTO))  # an escape: uvicorn's path, InferLayer
        status, _, body = c.reply()
        assert status == 200 and faces(body) == ["face"]
        c.send(post("/v1/inferx", PHOTO))
        assert c.reply()[0] == 404
        c.send(get("/v1/infer"))
        assert c.reply()[0] == 405
        assert server.served == 0
    finally:
        c.close()


def test_without_httptools_every_request_goes_through_asgi(runner: Any) -> None:
    s = Server(Device(runner), None, http="h11")
    try:
        assert s.classes[0].__name__ == "OneWriteH11Protocol"  # infer_protocol left it as is
        c = Conn(s.port)
        for _ in range(2):
            c.send(post("/v1/infer?top_k=1", PHOTO))
            status, _, body = c.reply()
            assert status == 200 and faces(body) == ["face"]
        c.send(post("/v1/infer", b"hello", "text/plain"))
        assert c.reply()[0] == 415
        c.close()
    finally:
        s.close()


def test_the_benchmarks_floor_answers_what_the_api_answers(server: Server) -> None:
    """benchmarks/http_floor.py (http.py's floor: a bare server doing the same decode and run)
    gives the API's detections, kept alive; the figure beside the API's is of the same work."""
    import subprocess
    import sys

    from tests.support.helpers import ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    floor = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "http_floor.py"),
                              str(port), str(MODELS / "blazeface_int8.tflite")],
                             stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert floor.stdout is not None and floor.stdout.readline().strip() == b"ready"
        api, bare = Conn(server.port), Conn(port)
        try:
            for _ in range(2):
                api.send(post("/v1/infer", PHOTO))
                bare.send(post("/v1/infer", PHOTO))
                (a_status, _, a_body), (b_status, _, b_body) = api.reply(), bare.reply()
                assert a_status == b_status == 200
                assert json.loads(a_body)["detections"] == json.loads(b_body)["detections"]
                assert faces(b_body) == ["face"]
        finally:
            api.close()
            bare.close()
    finally:
        floor.terminate()
        floor.wait(10)
