"""HTTP API and dashboard of ``fleet serve`` (FastAPI; run by uvicorn in :mod:`.server`).

An adapter like the MQTT link: reads come from the store, changes go through the service's
loop (:meth:`FleetService.call`), the app owns no state. With a token every ``/v1`` route and
``/metrics`` need ``Authorization: Bearer <token>``; the dashboard page itself holds no data
(it asks ``/v1`` with the token given in the page's ``#token=`` fragment, never sent to the
server in a URL). Built by :func:`create_app` from its parts, so tests build it around real ones.
"""

from __future__ import annotations

import hmac
from importlib import resources
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from .errors import FleetError, RolloutError
from .rollout import IllegalTransition, Policy
from .service import FleetService
from .spec import parse_duration, parse_percent, parse_waves
from .store import FleetStore
from .views import device_json, rollout_json, rollout_summary, update_json


class RolloutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)
    group: str | None = Field(default=None, max_length=64)
    devices: list[str] | None = Field(default=None, max_length=100_000)
    waves: str = "1,10%,50%,100%"
    success_threshold: str = "95%"
    error_threshold: str = "10%"
    min_executed: int = Field(default=3, ge=1, le=1_000_000)
    wave_timeout: str = "15m"
    on_halt: Literal["pause", "rollback"] = "pause"
    registry: str | None = Field(default=None, max_length=2000)


def create_app(service: FleetService, store: FleetStore, token: str | None) -> FastAPI:
    app = FastAPI(title="edge-agent fleet", docs_url=None, redoc_url=None)

    def auth(request: Request) -> None:
        if token is None:
            return
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RolloutError)
    def _rollout_error(request: Request, exc: RolloutError) -> JSONResponse:
        code = 409 if isinstance(exc, IllegalTransition) else (
            404 if "no such rollout" in str(exc) else 400)
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(FleetError)
    def _fleet_error(request: Request, exc: FleetError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    guarded = [Depends(auth)]

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        h = service.health()
        return JSONResponse(h, status_code=200 if h["ok"] else 503)

    @app.get("/v1/devices", dependencies=guarded)
    def devices() -> list[dict[str, Any]]:
        return [device_json(r) for r in store.devices()]

    @app.get("/v1/devices/{device}", dependencies=guarded)
    def device(device: str) -> dict[str, Any]:
        row = store.device(device)
        if row is None:
            raise HTTPException(404, f"device {device!r}: never seen on the broker")
        out = device_json(row)
        out["updates"] = [update_json(u) for u in store.update_history(device)]
        return out

    @app.get("/v1/lost", dependencies=guarded)
    def lost() -> list[dict[str, Any]]:
        return [{"device": d, "stream": s, "missing": m, "reported_lost": r, "duplicates": u}
                for d, s, m, r, u in store.lost_by_stream()]

    @app.get("/v1/rollouts", dependencies=guarded)
    def rollouts() -> list[dict[str, Any]]:
        return [rollout_summary(r) for r in store.rollouts()]

    @app.get("/v1/rollouts/{rid}", dependencies=guarded)
    def rollout(rid: str) -> dict[str, Any]:
        r = store.rollout(rid)
        if r is None:
            raise HTTPException(404, f"rollout {rid}: no such rollout")
        return rollout_json(r)

    @app.post("/v1/rollouts", dependencies=guarded, status_code=201)
    def start(req: RolloutRequest) -> dict[str, Any]:
        policy = Policy(
            parse_waves(req.waves),
            success_threshold=parse_percent(req.success_threshold, "--success-threshold"),
            error_threshold=parse_percent(req.error_threshold, "--error-threshold"),
            min_executed=req.min_executed,
            wave_timeout_s=parse_duration(req.wave_timeout, "--wave-timeout"),
            on_halt=req.on_halt,
        )
        doc = service.create_rollout(model=req.model, version=req.version, policy=policy,
                                     group=req.group, devices=req.devices,
                                     registry=req.registry)
        r = store.rollout(doc["id"])
        assert r is not None
        return rollout_json(r)

    @app.post("/v1/rollouts/{rid}/{action}", dependencies=guarded)
    def operate(rid: str, action: Literal["pause", "resume", "abort"]) -> dict[str, Any]:
        service.operate(rid, action)
        r = store.rollout(rid)
        assert r is not None
        return rollout_json(r)

    @app.get("/metrics", dependencies=guarded)
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from .metrics import registry_for

        return Response(generate_latest(registry_for(store, service.counters)),
                        media_type=CONTENT_TYPE_LATEST)

    page = resources.files(__package__).joinpath("static").joinpath("dashboard.html")

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(page.read_text(encoding="utf-8"),
                            headers={"Content-Security-Policy": "default-src 'self'; "
                                     "style-src 'self' 'unsafe-inline'; "
                                     "script-src 'self' 'unsafe-inline'"})

    return app
