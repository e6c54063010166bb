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
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
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


def encode(doc: dict[str, Any]) -> bytes:
    """JSON as Starlette's JSONResponse writes it (compact, UTF-8, no NaN)."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body; :class:`BodyError` 413 as soon as it grows over ``limit``."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise BodyError(413, f"body over {limit} bytes (http.max_body_bytes)")
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


async def answer(device: Any, raw_headers: list[tuple[bytes, bytes]],
                 chunks: AsyncIterator[bytes], threshold: float | None,
                 top_k: int | None) -> Reply:
    """The reply to one ``POST /v1/infer`` (auth and the query already checked)."""
    pool = device.pool
    limit = device.limits.max_body
    ctype = length = None
    for k, v in raw_headers:
        if k == b"content-type":
            ctype = v.decode("latin-1")
        elif k == b"content-length":
            length = v.decode("latin-1")
    try:
        mt = check_type(ctype)
        if length is not None and length.isdigit() and int(length) > limit:
            raise BodyError(413, f"body of {length} bytes is over http.max_body_bytes ({limit})")
        pool.admit()
    except BodyError as exc:
        pool.count("bad_input")
        return detail(exc.status, str(exc))
    except Busy as exc:
        return detail(429, str(exc), (b"retry-after", str(exc.retry_after).encode()))
    try:
        data = await read_limited(chunks, limit)
        where = "body"
        if mt == "multipart/form-data":
            data, where = await multipart_image(raw_headers, data)
        body = await pool.run_request(_run_and_encode, device, data, threshold, top_k, where,
                                      pixels=image_pixels(data))
    except BodyError as exc:
        pool.count("bad_input")
        return detail(exc.status, str(exc))
    except Unavailable as exc:
        return detail(503, str(exc))
    except _Gone:
        raise
    except Exception as exc:  # the model failed on a valid image: say so, keep serving
        pool.count("failed")
        log.warning("/v1/infer failed: %r", exc)
        return detail(500, f"inference failed: {exc}")
    finally:
        pool.release()
    pool.count("ok")
    return 200, body, []


def _run_and_encode(device: Any, data: bytes, threshold: float | None, top_k: int | None,
                    where: str) -> bytes:
    out = device.pool.run_bytes(data, threshold, top_k, where)
    out["model"] = {**device.model_info(), **{k: v for k, v in out["model"].items() if v}}
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
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        reply: Reply
        if self.token is not None and not bearer_ok(
                next((v.decode("latin-1") for k, v in headers if k == b"authorization"), ""),
                self.token):
            reply = detail(401, "missing or wrong token (Authorization: Bearer <token>)",
                           (b"www-authenticate", b"Bearer"))
        else:
            try:
                threshold, top_k = infer_query(scope.get("query_string", b"").decode("latin-1"))
            except BodyError as exc:
                self.device.pool.count("bad_input")
                reply = detail(exc.status, str(exc))
            else:
                try:
                    reply = await answer(self.device, headers, _body(receive), threshold, top_k)
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
