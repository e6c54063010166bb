"""The HTTP API as an agent component: uvicorn on its own thread, started and stopped by the
Agent like MQTT or the bridge (the composition root, :mod:`edge_agent.app`, builds it).

Nothing here can hold up the pipeline: ``on_result`` (the inference worker) only observes the
stage times and keeps the last detections; JPEG encoding happens on request, in the server's
thread pool, once per new frame however many viewers; ``/v1/infer`` runs on its own
interpreters (:mod:`.infer`). ``stop`` ends the streams and gives uvicorn a bounded time.

A bind address beyond loopback without ``http.token_file`` is refused when the component is
built (a :class:`ConfigError`: the agent does not start). A port that cannot be bound (in use)
is logged as one error and the agent runs on without HTTP (``http.error`` in status).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..component import Component
from ..config import Config, is_loopback, read_token
from ..errors import ConfigError

log = logging.getLogger("edge_agent.api")

READ_ONLY_COMMANDS = frozenset({"ping", "snapshot"})
"""Commands that change nothing; every other one needs the token, even on loopback."""
HISTORY_POINTS = 240  # metrics windows kept for the page's chart (20 min at 5 s)
RECENT_DETECTIONS = 20
COMMAND_STATUS = {"failed": 500, "unknown_command": 404, "busy": 409, "unavailable": 503}
"""HTTP status of a command's error code; any other code is a refusal of the request (422)."""


@dataclass(frozen=True)
class Limits:
    max_body: int
    stream_clients: int
    stream_fps: float


class HttpComponent(Component):
    name = "http"

    def __init__(self, config: Config, *, status: Callable[[], dict[str, Any]]) -> None:
        h = config.http
        self.config = config
        self.token = read_token(h.token_file, "http.token_file")
        if self.token is None and not is_loopback(h.host):
            raise ConfigError(
                f"http.host {h.host}: serving beyond loopback needs http.token_file (a bearer "
                "token of 16+ characters); set it, or bind http.host = 127.0.0.1")
        for what, path in (("http.cert", h.cert), ("http.key", h.key)):
            if path is not None and not os.access(path, os.R_OK):
                raise ConfigError(f"{what} {path}: cannot read it")
        self.limits = Limits(h.max_body_bytes, h.stream_clients, h.stream_fps)
        self.version = __version__
        self.status = status
        self.stopping = threading.Event()
        self.error: str | None = None
        self.url: str | None = None
        self.state_changing: set[str] = set()
        self._agent: Any = None
        self._server: Any = None
        self._registry: Any = None
        self._lock = threading.Lock()
        self._last_result = 0.0
        self._snapshot: dict[str, Any] = {}
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY_POINTS)
        # (wall time, frame, detections) of recent frames that found something; made into
        # JSON-ready rows only when the page asks (:meth:`recent`), not for every frame
        self._recent: deque[tuple[float, int, Any]] = deque(maxlen=RECENT_DETECTIONS)
        self._jpeg: tuple[int, bytes] | None = None
        self._jpeg_lock = threading.Lock()
        self._streams = 0
        self._commands: Any = None  # MQTT's registry (run_command) when MQTT is on
        from ..mqtt.commands import Registry  # pure: no paho

        self._own = Registry()
        self._own.add("ping", self._ping)
        self.pool: Any = None

    # wiring (the composition root) ------------------------------------------------------------
    def use_commands(self, messaging: Any) -> None:
        """Serve MQTT's commands (the same handlers and params checks) instead of our own."""
        self._commands = messaging

    def add_command(self, name: str, handler: Callable[[dict[str, Any]], dict[str, Any]],
                    params_model: type[Any] | None = None) -> None:
        """A command for ``POST /v1/commands/{name}`` when MQTT is off."""
        self._own.add(name, handler, params_model)

    # Component --------------------------------------------------------------------------------
    def start(self, agent: Any) -> None:
        from ..common.asgi_thread import ServerThread
        from .infer import InferPool
        from .infer_protocol import infer_protocol
        from .metrics import build_registry
        from .routes import create_app

        h = self.config.http
        self._agent = agent
        self._registry = build_registry(self, __version__)
        pipeline = agent.pipeline
        self.pool = InferPool(lambda: getattr(pipeline, "runner", None),
                              workers=h.infer_workers, max_pending=h.max_infer, nice=h.nice,
                              inline_max_pixels=h.inline_max_pixels)
        self.pool.set_duty_cap(h.infer_duty, pipeline_contention(pipeline))
        self.state_changing = set(self.command_names()) - READ_ONLY_COMMANDS
        app = create_app(self, self.token)
        try:
            self._server = ServerThread(
                app, h.host, h.port, name="http",
                certfile=str(h.cert) if h.cert else None, keyfile=str(h.key) if h.key else None,
                limit_concurrency=h.max_requests, nice=h.nice,
                protocol=lambda base: infer_protocol(base, self, self.token))
            self._server.start()
        except (OSError, RuntimeError) as exc:
            self._server = None
            reason = getattr(exc, "strerror", None) or str(exc)
            self.error = f"http {h.host}:{h.port}: cannot serve ({reason}); the agent runs on " \
                         "without its HTTP API (set http.port, or http.enabled = false)"
            log.error("%s", self.error)
            return
        tasks = getattr(getattr(getattr(self._server, "server", None), "server_state", None),
                        "tasks", None)
        if tasks is not None:  # the same set for the server's life: looked up once
            self.pool.others = lambda: len(tasks) - 1 - self._streams
        else:
            self.pool.others = self._other_requests
        self.url = self._server.url
        log.info("HTTP API on %s (%s)", self.url,
                 "token required" if self.token else "no token: reads only, loopback")

    def on_started(self) -> None:
        self.state_changing = set(self.command_names()) - READ_ONLY_COMMANDS

    def on_result(self, result: Any) -> None:
        self._last_result = time.monotonic()
        r = result.result
        dets = getattr(r, "detections", None) if r is not None else None
        if dets:
            self._recent.append((result.wall_time, result.seq, dets))

    def contribute(self, snapshot: dict[str, Any]) -> None:
        out: dict[str, Any] = {"url": self.url, **self.api_counts()}
        if self.error:
            out["error"] = self.error
        snapshot["http"] = out

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        lat = snapshot.get("latency_ms") or {}
        point = {
            "ts": (snapshot.get("window") or {}).get("end") or time.time(),
            "fps": (snapshot.get("fps") or {}).get("processed"),
            "p50_ms": {s: v.get("p50") for s, v in lat.items() if isinstance(v, dict)},
            "p95_ms": {s: v.get("p95") for s, v in lat.items() if isinstance(v, dict)},
        }
        with self._lock:
            self._snapshot = snapshot
            self._history.append(point)

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            if not self._server.stop(1.0):
                log.warning("HTTP server did not stop within 1 s")
        if self.pool is not None:
            self.pool.close()

    def _other_requests(self) -> int:
        """Requests uvicorn serves besides the caller's, stream viewers not counted (its
        ``server_state.tasks``: one task per request being read or answered through ASGI, or
        answered from a pool thread by :mod:`.infer_protocol`; the caller one of them)."""
        tasks = getattr(getattr(getattr(self._server, "server", None), "server_state", None),
                        "tasks", None)
        return 1 if tasks is None else len(tasks) - 1 - self._streams

    # what the routes read ---------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        return self._server.port if self._server is not None else None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot

    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._history)

    def recent(self) -> list[dict[str, Any]]:
        """The recent frames that found something, newest first (the page's list)."""
        rows = []
        for wall_time, seq, dets in reversed(list(self._recent)):
            top = max(dets, key=lambda d: d.score)
            rows.append({"ts": round(wall_time, 3), "frame": seq, "count": len(dets),
                         "label": top.label, "score": round(float(top.score), 3)})
        return rows

    def counters(self) -> dict[str, Any]:
        p = getattr(self._agent, "pipeline", None)
        return p.counters() if p is not None else {}

    def latencies(self) -> dict[str, Any]:
        """The pipeline's per-stage histograms since start (``/metrics`` bins them)."""
        p = getattr(self._agent, "pipeline", None)
        return p.latencies.total() if p is not None else {}

    def camera(self) -> dict[str, Any]:
        reader = getattr(getattr(self._agent, "pipeline", None), "reader", None)
        return dict(reader.stats()) if reader is not None else {}

    def model_info(self) -> dict[str, Any]:
        return dict(getattr(self._agent, "model_info", None) or {})

    def api_counts(self) -> dict[str, Any]:
        pool = self.pool
        counts = dict(pool.counts) if pool is not None else {}
        duty: dict[str, Any] = {"infer_duty": self.config.http.infer_duty}
        if pool is not None:
            duty.update(capped=pool.capped(), throttle_wait_s=round(pool.throttle_wait_s, 3))
        return {"infer": counts, "duty_cap": duty, "stream_clients": self._streams, **counts}

    def exposition(self) -> tuple[bytes, str]:
        from .metrics import exposition

        return exposition(self._registry)

    def ready(self) -> tuple[bool, str]:
        pipeline = getattr(self._agent, "pipeline", None)
        if pipeline is None or getattr(pipeline, "runner", None) is None:
            return False, "no model loaded"
        if self._agent.stopping:
            return False, "the agent is stopping"
        cam = self.camera()
        health = cam.get("health")
        if health != "ok":
            why = f": {cam['last_error']}" if cam.get("last_error") else ""
            return False, f"camera {health}{why}"
        limit = self.config.http.ready_max_frame_age_s
        age = time.monotonic() - self._last_result if self._last_result else None
        if age is None or age > limit:
            since = "since start" if age is None else f"for {age:.1f} s"
            return False, f"no frame processed {since} (limit http.ready_max_frame_age_s " \
                          f"= {limit:g})"
        return True, "ok"

    def latest_jpeg(self) -> bytes | None:
        """The latest processed frame, annotated; encoded once per frame for every viewer."""
        ring = getattr(getattr(self._agent, "pipeline", None), "snapshots", None)
        items = ring.items() if ring is not None else []
        if ring is None or not items:
            return None
        fr = items[-1]
        with self._jpeg_lock:
            if self._jpeg is not None and self._jpeg[0] == fr.seq:
                return self._jpeg[1]
            from ..inference.annotate import encode_jpeg

            jpeg = encode_jpeg(ring.annotated(fr))
            self._jpeg = (fr.seq, jpeg)
            return jpeg

    def stream_enter(self) -> bool:
        with self._lock:
            if self._streams >= self.limits.stream_clients:
                return False
            self._streams += 1
            return True

    def stream_exit(self) -> None:
        with self._lock:
            self._streams -= 1

    # commands ---------------------------------------------------------------------------------
    def command_names(self) -> list[str]:
        if self._commands is not None:
            return sorted(set(self._commands.command_names()))
        return self._own.names()

    def run_command(self, name: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, body)``: ``{"ok": true, "result": ...}`` or ``{"ok": false,
        "error": {"code", "message"}}`` like an MQTT reply."""
        from ..mqtt.errors import CommandError

        try:
            params = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError) as exc:
            return 422, _error("invalid_payload", f"body: not JSON ({exc})")
        if not isinstance(params, dict):
            return 422, _error("invalid_payload", "body: the params must be a JSON object")
        try:
            if self._commands is not None:
                result = self._commands.run_command(name, params)
            else:
                result = self._own.run(name, params)
        except CommandError as exc:
            return COMMAND_STATUS.get(exc.code, 422), _error(exc.code, exc.message)
        return 200, {"ok": True, "command": name, "result": result}

    def _ping(self, params: dict[str, Any]) -> dict[str, Any]:
        started = getattr(self._agent, "_t_start", None)
        return {"pong": True, "agent_version": __version__,
                "uptime_s": round(time.monotonic() - started, 1) if started else None}


def pipeline_contention(pipeline: Any) -> Any:
    """When the camera's pipeline is contended: its stale drops grow (the camera delivers
    faster than it processes), or it takes every frame as fast as it can (policy ``all``)."""
    from .duty import ContentionWatch

    def stale() -> int:
        return int(pipeline.counters()["dropped_by"].get("stale", 0))

    def flat_out() -> bool:
        return getattr(getattr(pipeline, "slot", None), "policy", None) == "all"

    return ContentionWatch(stale, flat_out)


def add_local_commands(http: HttpComponent, reload: Any, updates: Any) -> None:
    """The commands when MQTT is off: ``reload`` (the ops reload) and the updates' own."""
    from ..mqtt.commands import NoParams
    from ..mqtt.errors import CommandError
    from ..updates.params import UpdateParams

    def reload_cmd(params: dict[str, Any]) -> dict[str, Any]:
        source = http.config.source
        if source is None:
            raise CommandError("unavailable",
                               "the agent was started without a config file: nothing to re-read")
        plan = reload.reload()
        if plan is None:
            raise CommandError("invalid_config", f"{source} does not load (the log says why); "
                               "still running on the old config")
        return {"reloaded": str(source), "applied": plan.live, "restart_required": plan.restart}

    http.add_command("reload", reload_cmd, NoParams)
    http.add_command("update", updates.cmd_update, UpdateParams)
    http.add_command("rollback", updates.cmd_rollback)
    http.add_command("cancel", updates.cmd_cancel)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}
