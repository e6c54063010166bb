"""``POST /v1/infer`` over HTTP: the one answer both ways in reach it, and a lean ASGI layer in
front of the FastAPI app that serves this hot endpoint without FastAPI's per-request machinery
(routing, dependency solving, validation models, middleware stack: ~1 ms of the event loop's
time a request on the build machine, a fifth of the model's own time). The FastAPI route stays
for the OpenAPI schema and answers with the same :func:`answer`.

The layer keeps every rule of the route: the bearer token (401), the query (422), the media type
(415), the body size by Content-Length and while it streams (413), the admission slots (429), a
body that is no image (422), no model (503). The image is decoded, run and its reply encoded to
JSON on the pool's own threads, or inline when the image is small and nothing else is in flight
(:meth:`InferPool.run_request`, which also applies the duty cap).

The rules are written once, as functions of headers and bytes (:func:`open_request` before the
body, :func:`run_admitted` / :func:`run_inline` after it, :func:`failure`), for the three ways a
request reaches them: on httptools the server's HTTP protocol answers ``POST /v1/infer`` itself
(:mod:`.infer_protocol`, no ASGI at all); what it leaves to ASGI, and every request on h11,
meets :class:`InferLayer`; the FastAPI route is there for the schema.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .bodies import BodyError, check_type, image_pixels, infer_query
from .infer import Busy, Unavailable

log = logging.getLogger("edge_agent.api")

PATH = "/v1/infer"
JSON = (b"content-type", b"application/json")
Reply = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""status, JSON body, extra headers"""


def bearer_ok(header: str, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


def detail(status: int, message: str, *headers: tuple[bytes, bytes]) -> Reply:
    return status, json.dumps({"detail": message}).encode(), list(headers)


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode(doc: dict[str, Any]) -> bytes:
    """JSON as Starlette's JSONResponse writes it (compact, UTF-8, no NaN)."""
    return _ENCODER.encode(doc).encode()


_TYPES: dict[str | None, str | BodyError] = {}
"""Content-Type header -> media type or the 415 (:func:`check_type`), for the few a server
sees; at most :data:`TYPES_KEPT` kept."""
TYPES_KEPT = 32


def media_type_of(ctype: str | None) -> str:
    """:func:`check_type`, remembered for the Content-Type headers seen last."""
    got = _TYPES.get(ctype)
    if got is None:
        try:
            got = check_type(ctype)
        except BodyError as exc:
            got = exc
        if len(_TYPES) >= TYPES_KEPT:
            _TYPES.clear()
        _TYPES[ctype] = got
    if isinstance(got, BodyError):
        raise BodyError(got.status, str(got))
    return got


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body; :class:`BodyError` 413 as soon as it grows over ``limit``."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise too_big(limit)
    return bytes(buf)


async def multipart_image(raw_headers: list[tuple[bytes, bytes]], data: bytes) -> tuple[bytes, str]:
    """The first file part of a multipart body, and where it came from (for messages)."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def once() -> AsyncGenerator[bytes, None]:
        yield data

    try:
        form = await MultiPartParser(Headers(raw=raw_headers), once(),
                                     max_files=4, max_fields=16).parse()
    except MultiPartException as exc:
        raise BodyError(422, f"multipart body: {exc.message}") from None
    except AssertionError:
        raise BodyError(422, "multipart body: python-multipart is not installed") from None
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            content = await value.read()
            await value.close()
            return content, f"multipart part {key!r}"
    raise BodyError(422, "multipart body: no file part (send the image as a file field)")


@dataclass
class Admitted:
    """A request past every check that needs no body, holding an admission slot (released by
    :func:`run_admitted`, :func:`run_inline` or the caller when the body never comes)."""

    mt: str
    threshold: float | None
    top_k: int | None


def open_request(device: Any, token: str | None, raw_headers: list[tuple[bytes, bytes]],
                 query: bytes) -> Admitted | Reply:
    """The checks before the body, in order: the bearer token (401), the query (422), the
    media type (415), Content-Length (413), an admission slot (429); the refusal's reply."""
    pool = device.pool
    auth = ctype = length = None
    for k, v in raw_headers:
        if k == b"authorization":
            if auth is None:
                auth = v.decode("latin-1")
        elif k == b"content-type":
            ctype = v.decode("latin-1")
        elif k == b"content-length":
            length = v.decode("latin-1")
    if token is not None and not bearer_ok(auth or "", token):
        return detail(401, "missing or wrong token (Authorization: Bearer <token>)",
                      (b"www-authenticate", b"Bearer"))
    limit = device.limits.max_body
    try:
        threshold, top_k = infer_query(query.decode("latin-1")) if query else (None, None)
        mt = media_type_of(ctype)
        if length is not None and length.isdigit() and int(length) > limit:
            raise BodyError(413, f"body of {length} bytes is over http.max_body_bytes ({limit})")
        pool.admit()
    except BodyError as exc:
        pool.count("bad_input")
        return detail(exc.status, str(exc))
    except Busy as exc:
        return detail(429, str(exc), (b"retry-after", str(exc.retry_after).encode()))
    return Admitted(mt, threshold, top_k)


def too_big(limit: int) -> BodyError:
    return BodyError(413, f"body over {limit} bytes (http.max_body_bytes)")


def failure(pool: Any, exc: Exception) -> Reply:
    """The reply to an admitted request that failed: bad input (4xx), no model (503), or the
    model failing on a valid image (500: said, and the server keeps serving)."""
    if isinstance(exc, BodyError):
        pool.count("bad_input")
        return detail(exc.status, str(exc))
    if isinstance(exc, Unavailable):
        return detail(503, str(exc))
    pool.count("failed")
    log.warning("/v1/infer failed: %r", exc)
    return detail(500, f"inference failed: {exc}")


async def answer(device: Any, raw_headers: list[tuple[bytes, bytes]],
                 chunks: AsyncIterator[bytes], query: bytes, token: str | None) -> Reply:
    """The reply to one ``POST /v1/infer`` read through ASGI (:func:`open_request`'s checks,
    then the body, then the run)."""
    got = open_request(device, token, raw_headers, query)
    if not isinstance(got, Admitted):
        return got
    pool = device.pool
    try:
        data = await read_limited(chunks, device.limits.max_body)
    except BodyError as exc:
        pool.release()
        return failure(pool, exc)
    except BaseException:  # _Gone: the client went; a cancel
        pool.release()
        raise
    return await run_admitted(device, raw_headers, data, got)


async def run_admitted(device: Any, raw_headers: list[tuple[bytes, bytes]], data: bytes,
                       req: Admitted) -> Reply:
    """The reply for an admitted request's whole body; releases its slot."""
    pool = device.pool
    try:
        where = "body"
        if req.mt == "multipart/form-data":
            data, where = await multipart_image(raw_headers, data)
        body = await pool.run_request(_run_and_encode, device, data, req.threshold, req.top_k,
                                      where, pixels=image_pixels(data))
    except Exception as exc:
        return failure(pool, exc)
    finally:
        pool.release()
    pool.count("ok")
    return 200, body, []


def run_inline(device: Any, data: bytes, req: Admitted, send: Callable[[Reply], None]) -> None:
    """:func:`run_admitted` for a plain body run on the calling (event loop) thread, when
    :meth:`InferPool.inline_now` said so; the reply is given to ``send`` before the slot is
    released and the request counted (the client reads it meanwhile)."""
    pool = device.pool
    try:
        reply: Reply = 200, _run_and_encode(device, data, req.threshold, req.top_k, "body"), []
    except Exception as exc:
        reply = failure(pool, exc)
    try:
        send(reply)
    finally:
        pool.release()
    if reply[0] == 200:
        pool.count("ok")


_merged: tuple[Any, Any, dict[str, Any]] = (None, None, {})
"""(the agent's model info, the run's model fields, the two merged) of the last reply"""


def _run_and_encode(device: Any, data: bytes, threshold: float | None, top_k: int | None,
                    where: str) -> bytes:
    out = device.pool.run_bytes(data, threshold, top_k, where)
    global _merged
    info, own = device.model_info(), out["model"]
    last_info, last_own, merged = _merged
    if info != last_info or own != last_own:  # a new model: merged anew (else the same dict)
        merged = {**info, **{k: v for k, v in own.items() if v}}
        _merged = info, own, merged
    out["model"] = merged
    return encode(out)


class _Gone(Exception):
    """The client went away before its body was read."""


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class InferLayer:
    """ASGI: ``POST /v1/infer`` answered here, everything else passed to ``app``."""

    def __init__(self, app: Any, device: Any, token: str | None) -> None:
        self.app = app
        self.device = device
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            reply = await answer(self.device, scope["headers"], _body(receive),
                                 scope.get("query_string", b""), self.token)
        except _Gone:
            return
        status, body, extra = reply
        await send({"type": "http.response.start", "status": status,
                    "headers": [JSON, (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
