"""The device's FastAPI app: routes only; every fact comes from ``device`` (the
:class:`~edge_agent.api.component.HttpComponent`), so the app owns no state.

Auth: with a token (``http.token_file``), every route but ``/healthz``, ``/readyz`` and the
page's static files needs ``Authorization: Bearer <token>`` (401 otherwise); without one (a
loopback bind), reads are open and the commands that change state are refused (403). Bad input
is a 4xx with one line in ``detail``, never a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .bodies import BodyError
from .infer_http import answer, bearer_ok, read_limited

CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'")
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
NO_STORE = {"Cache-Control": "no-store"}


def create_app(device: Any, token: str | None) -> Any:
    """The ASGI app: the FastAPI routes behind the lean ``POST /v1/infer`` layer."""
    from .infer_http import InferLayer

    return InferLayer(create_fastapi(device, token), device, token)


def create_fastapi(device: Any, token: str | None) -> FastAPI:
    app = FastAPI(title="edge-agent device API", docs_url=None, redoc_url=None,
                  version=device.version)
    limits = device.limits

    async def auth(request: Request) -> None:  # async: checked on the loop, no thread hop
        if token is not None and not bearer_ok(request.headers.get("authorization", ""), token):
            raise HTTPException(401, "missing or wrong token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(auth)]

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        e = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in e.get("loc", ())) or "request"
        return JSONResponse({"detail": f"{where}: {e.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(BodyError)
    def _body(request: Request, exc: BodyError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """The process is alive and serving."""
        return {"ok": True, "version": device.version}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Model loaded and the camera delivering frames; 503 with the reason otherwise."""
        ok, reason = device.ready()
        return JSONResponse({"ready": ok, "reason": reason}, status_code=200 if ok else 503,
                            headers=NO_STORE)

    @app.get("/metrics", dependencies=guarded)
    def metrics() -> Response:
        body, ctype = device.exposition()
        return Response(body, media_type=ctype)

    @app.get("/v1/status", dependencies=guarded)
    def status() -> JSONResponse:
        """What ``edge-agent status --json`` shows."""
        return JSONResponse(device.status(), headers=NO_STORE)

    @app.get("/v1/history", dependencies=guarded)
    def history() -> dict[str, Any]:
        """fps and per-stage p50/p95 per metrics window (the last minutes), recent detections."""
        return {"points": device.history(), "detections": device.recent()}

    @app.get("/v1/snapshot.jpg", dependencies=guarded)
    async def snapshot() -> Response:
        """The latest processed frame, annotated (JPEG)."""
        jpeg = await run_in_threadpool(device.latest_jpeg)
        if jpeg is None:
            raise HTTPException(503, "no frame processed yet (or pipeline.snapshot_ring = 0)")
        return Response(jpeg, media_type="image/jpeg", headers=NO_STORE)

    @app.get("/v1/stream.mjpg", dependencies=guarded)
    async def stream() -> StreamingResponse:
        """Annotated live stream (multipart/x-mixed-replace), at most ``http.stream_fps``."""
        if not device.stream_enter():
            raise HTTPException(503, f"{limits.stream_clients} viewers already "
                                "(http.stream_clients); close one")
        period = 1.0 / limits.stream_fps

        async def parts() -> AsyncIterator[bytes]:
            try:
                last = None
                while not device.stopping.is_set():
                    jpeg = await run_in_threadpool(device.latest_jpeg)
                    if jpeg is not None and jpeg is not last:
                        last = jpeg
                        yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                               + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                    await asyncio.sleep(period)
            finally:
                device.stream_exit()

        return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers=NO_STORE)

    @app.post("/v1/infer", dependencies=guarded)
    async def infer(
        request: Request,
        threshold: float | None = Query(None, ge=0.0, le=1.0, description="Minimum score"),
        top_k: int | None = Query(None, ge=1, le=1000, description="Results kept at most"),
    ) -> Response:
        """Run the model on an image (the body, or a multipart file part), on the API's own
        interpreter; the reply is ``infer --json``'s plus the model, stage times and size.
        (Served by :class:`~edge_agent.api.infer_http.InferLayer` ahead of this route, with
        the same answer.)"""
        code, body, extra = await answer(device, request.headers.raw, request.stream(),
                                         request.scope.get("query_string", b""), token)
        return Response(body, status_code=code, media_type="application/json",
                        headers={k.decode(): v.decode() for k, v in extra})

    @app.get("/v1/commands", dependencies=guarded)
    def commands() -> dict[str, Any]:
        return {"commands": device.command_names(),
                "need_token": sorted(device.state_changing)}

    @app.post("/v1/commands/{name}", dependencies=guarded)
    async def command(name: str, request: Request) -> JSONResponse:
        """The same commands as MQTT (``ping``, ``snapshot``, ``reload``, ``update`` ...);
        the body is the command's params (a JSON object, or nothing)."""
        if name not in device.command_names():
            raise HTTPException(404, f"unknown command {name!r} (known: "
                                f"{', '.join(device.command_names())})")
        if name in device.state_changing and token is None:
            raise HTTPException(403, f"command {name!r} changes the device: it needs "
                                "http.token_file (and Authorization: Bearer <token>)")
        raw = await read_limited(request.stream(), 64 * 1024)
        code, body = await run_in_threadpool(device.run_command, name, raw)
        return JSONResponse(body, status_code=code)

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return _static("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, f"no static file {name!r}")
        return _static(name)

    return app


def _static(name: str) -> Response:
    text = resources.files(__package__).joinpath("static").joinpath(name).read_bytes()
    return Response(text, media_type=STATIC[name], headers={"Content-Security-Policy": CSP})
