"""``POST /v1/infer`` answered in uvicorn's HTTP protocol itself, from the parser's callbacks.

At concurrency 1 the endpoint's own cost is what the server spends outside the image's decode
and run. Through ASGI (:class:`~.infer_http.InferLayer`) that was ~0.4 ms of the event loop's
time a request (session 7, per request, medians): the request parsed into uvicorn's cycle, a
task made for it and run a turn later, the body copied three more times (uvicorn's buffer,
``receive``, :func:`~.infer_http.read_limited`), the reply's head built and checked by
uvicorn's ``send`` and written through the one-write wrapper. Here the protocol (a subclass
of uvicorn's ``HttpToolsProtocol``, wrapped by :mod:`edge_agent.common.asgi_thread`'s
one-write transport) serves this one route itself:

- at the end of the headers, the checks that need no body (:func:`~.infer_http.open_request`:
  token 401, query 422, media type 415, Content-Length 413, an admission slot 429) — a
  refusal is written at once and the body that follows is dropped, as uvicorn does;
- the body is kept as the parser hands it over (a single chunk is not copied), 413 as soon as
  it grows over ``http.max_body_bytes``;
- when it is whole, a callback at the end of this turn of the event loop (so the requests of
  other connections read in the same turn are admitted first and send this one to the pool,
  as a task's start a turn later did) runs a small image inline
  (:meth:`~.infer.InferPool.inline_now`) and writes the reply with one ``transport.write``;
  anything else (a large image, other requests about, the duty cap, multipart) runs as a task
  of the server's (:func:`~.infer_http.run_admitted`, counted in uvicorn's tasks like an ASGI
  request, so shutdown waits for it and the inline rule sees it).

Every other request, and a ``POST /v1/infer`` that the protocol does not take (pipelined
behind a request still being answered, a request target that is not ``/v1/infer`` or
``/v1/infer?query`` as sent, e.g. with ``%``-escapes or a fragment, an upgrade, over
``http.max_requests``), goes through uvicorn's ASGI path unchanged, where
:class:`~.infer_http.InferLayer` answers it by the same rules. Without httptools (asyncio +
h11: armv7) there is no such protocol and every request takes the ASGI path.

uvicorn's internals this relies on (``uvicorn/protocols/http/httptools_impl.py``, read at
0.54.0, pinned in ``constraints/device.txt``): the parser callbacks ``on_headers_complete``,
``on_body``, ``on_message_complete``, the attributes ``url`` (the raw request target) and
``headers`` (lower-cased names), both made anew by ``on_message_begin``, ``parser``, ``cycle``
(the request being answered: ``response_complete``, ``keep_alive``, ``disconnected``,
``message_event``, read by ``connection_lost`` and ``shutdown``), ``expect_100_continue``,
``connections``, ``tasks``, ``limit_concurrency``, ``server_state.default_headers``,
``on_response_complete()`` (starts a pipelined request or arms the keep-alive timeout) and
``STATUS_LINE``. :func:`infer_protocol` checks they are there (class and instance) and falls
back to uvicorn's own class, with one warning, when any is missing; the tests in
``tests/integration/test_http_protocol.py`` fail if the fast path stops being taken.
"""

from __future__ import annotations

import logging
from typing import Any

from .bodies import image_pixels
from .infer_http import (
    Admitted,
    Reply,
    failure,
    open_request,
    run_admitted,
    run_inline,
    too_big,
)

log = logging.getLogger("edge_agent.api")

PATH = b"/v1/infer"
METHODS = ("on_headers_complete", "on_body", "on_message_complete", "on_response_complete",
           "on_message_begin", "connection_lost", "shutdown")
ATTRIBUTES = ("headers", "parser", "cycle", "expect_100_continue", "connections",
              "tasks", "limit_concurrency", "server_state", "loop")
JSON_HEAD = b"content-type: application/json\r\ncontent-length: "


_heads: tuple[Any, dict[int, bytes]] = (None, {})
"""(uvicorn's default headers, the reply heads made with them), by status"""


def _head(status: int, defaults: list[tuple[bytes, bytes]], lines: dict[int, bytes]) -> bytes:
    """A JSON reply's status line, uvicorn's default headers (``server``, ``date``: a new list
    each second) and its ``content-type``, up to the value of its ``content-length``
    (``lines``: uvicorn's status lines)."""
    global _heads
    made, heads = _heads
    if made is not defaults:
        heads = {}
        _heads = defaults, heads
    head = heads.get(status)
    if head is None:
        parts = [lines[status]]
        for name, value in defaults:
            parts += (name, b": ", value, b"\r\n")
        parts.append(JSON_HEAD)
        head = heads[status] = b"".join(parts)
    return head


class _Request:
    """One ``POST /v1/infer`` served by the protocol: stands in ``protocol.cycle`` for uvicorn's
    RequestResponseCycle (``response_complete``, ``keep_alive``, ``disconnected`` and
    ``message_event.set()`` are what uvicorn's own methods read of it)."""

    __slots__ = ("admitted", "chunks", "disconnected", "headers", "keep_alive", "message_event",
                 "more_body", "req", "response_complete", "size")

    def __init__(self, keep_alive: bool, headers: list[tuple[bytes, bytes]]) -> None:
        self.response_complete = False
        self.disconnected = False
        self.keep_alive = keep_alive
        self.headers = headers
        self.message_event = self
        self.more_body = True
        self.req: Admitted | None = None  # admitted: holding a slot until answered
        self.chunks: list[bytes] = []
        self.size = 0

    def set(self) -> None:
        """uvicorn wakes a cycle's reader this way; nothing waits on this one."""


def infer_protocol(base: type[Any], device: Any, token: str | None) -> type[Any]:
    """``base`` (uvicorn's HTTP protocol class, perhaps wrapped) with ``POST /v1/infer``
    answered in it (module doc); ``base`` itself when it is not httptools' or lacks what the
    subclass relies on."""
    try:
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    except ImportError:  # no httptools: asyncio + h11, every request through ASGI
        return base
    if not issubclass(base, HttpToolsProtocol):
        return base
    missing = [m for m in METHODS if not callable(getattr(base, m, None))]
    if missing:
        log.warning("uvicorn's HttpToolsProtocol has no %s: /v1/infer is served through ASGI",
                    ", ".join(missing))
        return base
    pool = device.pool
    limit = device.limits.max_body

    class InferProtocol(base):
        served = 0
        """Replies written by this class (the tests look: the fast path is taken)"""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            gone = [a for a in ATTRIBUTES if not hasattr(self, a)]
            self._fast = not gone
            if gone and not InferProtocol._warned:
                InferProtocol._warned = True
                log.warning("uvicorn's HttpToolsProtocol has no %s: /v1/infer is served "
                            "through ASGI", ", ".join(gone))

        _warned = False

        def _takes(self) -> bool:
            url: bytes = self.url
            if not (url == PATH or url.startswith(b"/v1/infer?")) or b"#" in url:
                return False
            if self.parser.get_method() != b"POST" or self.parser.should_upgrade():
                return False
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                return False  # pipelined behind one being answered: uvicorn queues it
            lc = self.limit_concurrency
            return lc is None or (len(self.connections) < lc and len(self.tasks) < lc)

        def on_headers_complete(self) -> None:
            if not (self._fast and self._takes()):
                super().on_headers_complete()
                return
            keep_alive = self.parser.get_http_version() != "1.0" \
                and self.parser.should_keep_alive()
            r = _Request(keep_alive, self.headers)
            self.cycle = r
            url: bytes = self.url
            got = open_request(device, token, r.headers, url[len(PATH) + 1:])
            if not isinstance(got, Admitted):
                self._reply(r, got)  # the body that follows is dropped (response complete)
                return
            r.req = got
            if self.expect_100_continue:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

        def on_body(self, body: bytes) -> None:
            r = self.cycle
            if type(r) is not _Request:
                super().on_body(body)
                return
            if r.response_complete:
                return
            r.chunks.append(body)
            r.size += len(body)
            if r.size > limit:
                r.chunks = []
                self._release(r)
                self._reply(r, failure(pool, too_big(limit)))

        def on_message_complete(self) -> None:
            r = self.cycle
            if type(r) is not _Request:
                super().on_message_complete()
                return
            if r.response_complete:
                return
            r.more_body = False
            chunks = r.chunks
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            r.chunks = []
            self.loop.call_soon(self._run, r, data)

        def _run(self, r: _Request, data: bytes) -> None:
            req = r.req
            assert req is not None
            if r.disconnected:  # the client went with its request whole: nobody to answer
                self._release(r)
                return
            if req.mt != "multipart/form-data" and pool.inline_now(image_pixels(data)):
                r.req = None
                pool.count("inline")
                run_inline(device, data, req, lambda reply: self._reply(r, reply))
                return
            task = self.loop.create_task(self._run_task(r, data, req))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

        async def _run_task(self, r: _Request, data: bytes, req: Admitted) -> None:
            r.req = None
            reply = await run_admitted(device, r.headers, data, req)
            if not r.disconnected:
                self._reply(r, reply)

        def _release(self, r: _Request) -> None:
            if r.req is not None:
                r.req = None
                pool.release()

        def _reply(self, r: _Request, reply: Reply) -> None:
            """The whole reply in one write, then uvicorn's bookkeeping (keep-alive timeout,
            a pipelined request's start, ``Connection: close``)."""
            status, body, extra = reply
            r.response_complete = True
            transport = self.transport
            if not transport.is_closing():
                parts = [_head(status, self.server_state.default_headers, STATUS_LINE),
                         str(len(body)).encode(), b"\r\n"]
                for name, value in extra:
                    parts += (name, b": ", value, b"\r\n")
                if not r.keep_alive:
                    parts.append(b"connection: close\r\n")
                parts += (b"\r\n", body)
                write = getattr(transport, "write_now", None) or transport.write
                write(b"".join(parts))
                InferProtocol.served += 1
                if not r.keep_alive:
                    transport.close()
            self.on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            r = self.cycle
            if type(r) is _Request and r.more_body:  # gone before its body came
                self._release(r)
            super().connection_lost(exc)

    InferProtocol.__name__ = InferProtocol.__qualname__ = f"Infer{base.__name__}"
    return InferProtocol
