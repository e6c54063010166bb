"""Local control socket: the running agent answers ``edge-agent status`` and ``diag bundle``.

Protocol: a unix stream socket (``config.control_socket``, mode 0660); the client sends one JSON
line ``{"cmd": "status"}``, ``{"cmd": "logs", "lines": N}`` or ``{"cmd": "snapshot",
"annotate": true}`` and reads one JSON line back.
Requests are capped at :data:`MAX_REQUEST` bytes, answers at :data:`MAX_REPLY`. The server
(:mod:`edge_agent.ops.lineserver`) gives every connection its own deadline (:data:`LIMITS`) and
serves them all at once, so a slow or stuck client never holds up ``edge-agent status`` (the
container's health check).

The agent also writes its status to ``<state_dir>/status.json`` (atomically) on start, every
``persist_every_s`` and on stop, so ``status`` can show the last known state of a stopped agent.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..common.atomicfile import atomic_write_bytes
from ..component import Component
from ..errors import AgentNotRunning, ControlError
from .lineserver import Limits, LineServer
from .logging_setup import RECENT
from .status import summarize

log = logging.getLogger(__name__)

MAX_REQUEST = 4096
MAX_REPLY = 4 * 1024 * 1024
MAX_CLIENTS = 16
LIMITS = Limits(deadline_s=2.0, max_request=MAX_REQUEST, max_clients=MAX_CLIENTS)
STATUS_FILE = "status.json"


def _error_line(reason: str) -> bytes:
    return json.dumps({"error": reason}).encode() + b"\n"


def status_path(state_dir: Path) -> Path:
    return state_dir / STATUS_FILE


def read_persisted(state_dir: Path) -> dict[str, Any] | None:
    """The last status the agent wrote, or None when it never ran with this state_dir."""
    try:
        data = json.loads(status_path(state_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ControlError(
            f"{status_path(state_dir)}: unreadable ({exc}); the agent rewrites it when it runs"
        ) from None
    if not isinstance(data, dict):
        raise ControlError(
            f"{status_path(state_dir)}: not a status record (a JSON {type(data).__name__}); "
            "the agent rewrites it when it runs"
        )
    return data


def request(sock_path: Path, cmd: str, timeout: float = 3.0, **params: Any) -> dict[str, Any]:
    """Ask the running agent; raises :class:`AgentNotRunning` when nobody answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(sock_path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AgentNotRunning(
                f"agent not running (no answer on {sock_path}: {exc.strerror})"
            ) from None
        except PermissionError:
            raise ControlError(
                f"{sock_path}: permission denied; run as the agent's user or group edge-agent"
            ) from None
        s.sendall(json.dumps({"cmd": cmd, **params}).encode() + b"\n")
        buf = bytearray()
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_REPLY:
                raise ControlError(f"{sock_path}: answer larger than {MAX_REPLY} bytes")
    except TimeoutError:
        raise ControlError(f"{sock_path}: agent did not answer within {timeout:g} s") from None
    finally:
        s.close()
    try:
        reply = json.loads(bytes(buf).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ControlError(f"{sock_path}: answer is not JSON (another program on it?)") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{sock_path}: answer is not a JSON object")
    if "error" in reply:
        raise ControlError(f"agent refused {cmd!r}: {reply['error']}")
    return reply


class ControlServer(Component):
    """Serves control requests (every connection at once, each with its own deadline) and
    persists status.json."""

    name = "control"

    def __init__(self, persist_every_s: float = 10.0, limits: Limits = LIMITS) -> None:
        self.persist_every_s = persist_every_s
        self.limits = limits
        self._server: LineServer | None = None
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {}
        self._last_persist = 0.0
        self._persist_error = ""
        self._view: Any = None
        self._agent: Any = None
        self.path: Path | None = None
        self.state_dir: Path | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self, agent: Any) -> None:
        from .agent_view import AgentView

        self._view = AgentView(agent)
        self._agent = agent
        path = agent.config.control_socket
        sock = self._bind(path)  # raises if another agent serves there: leave it alone
        self.path = path
        self.state_dir = agent.config.device.state_dir
        self._server = LineServer(sock, self._answer, _error_line, self.limits, name="control")
        self._server.start()
        self.persist()
        log.info("control socket on %s", self.path)

    def contribute(self, snapshot: dict[str, Any]) -> None:
        if self._server is not None:
            snapshot["control"] = self._server.counters()

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            self._snapshot = snapshot
        if time.monotonic() - self._last_persist >= self.persist_every_s:
            self.persist()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        if self._view is not None:
            self.persist(state="stopped")

    # status ----------------------------------------------------------------------------------
    def status(self, state: str = "running") -> dict[str, Any]:
        with self._lock:
            snapshot = dict(self._snapshot)
        return summarize(snapshot, self._view.facts(), state=state, pid=os.getpid())

    def persist(self, state: str = "running") -> None:
        if self.state_dir is None:
            return
        self._last_persist = time.monotonic()
        data = json.dumps(self.status(state), default=str, indent=1).encode()
        try:
            atomic_write_bytes(status_path(self.state_dir), data, mode=0o640)
        except OSError as exc:
            if str(exc) != self._persist_error:  # once per cause, not every persist_every_s
                log.warning("cannot write %s: %s", status_path(self.state_dir), exc)
            self._persist_error = str(exc)
        else:
            if self._persist_error:
                log.info("%s written again", status_path(self.state_dir))
            self._persist_error = ""

    # socket ----------------------------------------------------------------------------------
    @staticmethod
    def _bind(path: Path) -> socket.socket:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            try:
                request(path, "ping", timeout=1.0)
            except AgentNotRunning:
                path.unlink(missing_ok=True)  # stale socket of an agent that died
            except ControlError:
                path.unlink(missing_ok=True)
            else:
                raise ControlError(f"{path}: another agent is running (it answers there)")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.bind(str(path))
            os.chmod(path, 0o660)
            s.listen(MAX_CLIENTS)
        except OSError as exc:
            s.close()
            raise ControlError(f"{path}: cannot serve the control socket: {exc}") from None
        return s

    def _answer(self, line: bytes) -> bytes:
        reply: dict[str, Any]
        try:
            req = json.loads(line.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            reply = {"error": "request is not a JSON line"}
        else:
            reply = self.handle(req if isinstance(req, dict) else {})
        return json.dumps(reply, default=str).encode() + b"\n"

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "ping":
            return {"ok": True}
        if cmd == "status":
            return self.status()
        if cmd == "logs":
            try:
                n = max(1, min(int(req.get("lines", 200)), 1000))
            except (TypeError, ValueError):
                return {"error": "lines must be a number"}
            return {"lines": RECENT.lines()[-n:]}
        if cmd == "snapshot":
            return self._frame(bool(req.get("annotate")))
        return {"error": f"unknown command {cmd!r} (status, logs, snapshot, ping)"}

    def _frame(self, annotate: bool) -> dict[str, Any]:
        """The latest processed frame as JPEG (base64), with its detections drawn if asked."""
        from ..inference.annotate import annotate as draw
        from ..inference.annotate import encode_jpeg

        ring = getattr(getattr(self._agent, "pipeline", None), "snapshots", None)
        items = ring.items() if ring is not None else []
        if not items:
            return {"error": "no frame yet (pipeline.snapshot_ring = 0, or nothing processed)"}
        fr = items[-1]
        image = draw(fr.image, fr.result) if annotate else fr.image
        h, w = image.shape[:2]
        return {
            "jpeg_b64": base64.b64encode(encode_jpeg(image)).decode("ascii"),
            "width": w,
            "height": h,
            "seq": fr.seq,
            "annotated": annotate,
            "result": fr.result.to_json() if annotate and fr.result is not None else None,
        }
