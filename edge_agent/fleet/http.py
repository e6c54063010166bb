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

from .errors import FleetError, NotLeader, RolloutError
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


FORWARDED = "X-Edge-Fleet-Forwarded"


def forward_request(base: str, path: str, body: dict[str, Any] | None,
                    authorization: str | None, timeout: float = 20.0
                    ) -> tuple[int, Any]:
    """POST ``body`` to the leader's ``base`` + ``path``; (its status, its JSON answer)."""
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(base.rstrip("/") + path, data=json.dumps(body or {}).encode(),
                                 method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header(FORWARDED, "1")
    if authorization:
        req.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read(16 * 2**20))
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read(65536))
        except ValueError:
            return exc.code, {"detail": f"the leader {base} answered HTTP {exc.code}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NotLeader(f"this fleet serve replica does not lead the rollouts and the leader "
                        f"at {base} cannot be reached ({getattr(exc, 'reason', exc)})") from None


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

    def forward(request: Request, body: dict[str, Any] | None) -> JSONResponse:
        """A rollout request that reached a replica which does not lead: to the leader."""
        lead = store.leader(service.settings.leader_lock)
        if request.headers.get(FORWARDED) or lead is None or not lead[1] or \
                lead[0] == service.link_settings.client_id:
            raise NotLeader(f"this fleet serve replica does not lead the rollouts and knows "
                            f"no leader to forward to ({lead[0] if lead else 'none yet'}); "
                            "try again in a few seconds")
        status, doc = forward_request(lead[1], request.url.path, body,
                                      request.headers.get("authorization"))
        return JSONResponse(doc, status_code=status)

    @app.post("/v1/rollouts", dependencies=guarded, status_code=201, response_model=None)
    def start(req: RolloutRequest, request: Request) -> dict[str, Any] | JSONResponse:
        if not service.leading:
            return forward(request, req.model_dump())
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

    @app.post("/v1/rollouts/{rid}/{action}", dependencies=guarded, response_model=None)
    def operate(rid: str, action: Literal["pause", "resume", "abort"],
                request: Request) -> dict[str, Any] | JSONResponse:
        if not service.leading:
            return forward(request, {})
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
