"""The console reporter of ``edge-agent run``: a startup banner, then one line per metrics
interval with what was seen and the broker's state.

The banner says what the agent runs: model and version, backend and delegate, the source (and
how a file source is paced), the broker, the state folder, the config file. A broker that does
not answer a TCP connect within 2 s of the start is warned about at once (the agent keeps
running; records wait in the outbox). The interval line adds the detections of the interval
(frames with something seen, the top labels) and the broker (``connected``, ``down, N waiting``,
``off``). A last window shorter than half the interval (the agent stopped before it was due)
prints no line: the final summary covers it.
"""

from __future__ import annotations

import collections
import socket
import threading
from typing import Any, TextIO

from ..component import Component
from ..telemetry import summary_line

BROKER_PROBE_S = 2.0


class ConsoleReporter(Component):
    name = "console"

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interval_s: float | None = None
        self._lock = threading.Lock()
        self._seen_frames = 0
        self._labels: collections.Counter[str] = collections.Counter()

    def start(self, agent: Any) -> None:
        cfg = agent.config
        self.interval_s = float(cfg.metrics.interval_s)
        self._write(banner(agent))
        if cfg.mqtt.enabled:
            threading.Thread(target=self._probe_broker, args=(cfg.mqtt.host, cfg.mqtt.port),
                             name="console-broker-probe", daemon=True).start()

    def _probe_broker(self, host: str, port: int) -> None:
        try:
            with socket.create_connection((host, port), timeout=BROKER_PROBE_S):
                return
        except OSError as exc:
            why = exc.strerror or str(exc) or type(exc).__name__
        self._write(f"warning: broker {host}:{port} does not answer ({why}); the agent runs on "
                    "and keeps its records in the outbox until it does (check mqtt.host/port, "
                    "the network, `edge-agent doctor`)")

    def on_result(self, result: Any) -> None:
        r = getattr(result, "result", None)
        if r is None:
            return
        names = [d.label for d in getattr(r, "detections", [])] or [
            c.label for c in getattr(r, "classes", [])[:1]]
        if names:
            with self._lock:
                self._seen_frames += 1
                self._labels.update(names)

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            seen, labels = self._seen_frames, self._labels
            self._seen_frames, self._labels = 0, collections.Counter()
        window = snapshot.get("window", {}).get("seconds")
        if self.interval_s and isinstance(window, (int, float)) and window < self.interval_s / 2:
            return  # the stop came before this interval was due: the final summary says it
        self._write(f"{summary_line(snapshot)} | {seen_text(seen, labels)} | "
                    f"broker {broker_text(snapshot)}")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def seen_text(frames: int, labels: collections.Counter[str]) -> str:
    if not frames:
        return "seen nothing"
    top = ", ".join(f"{name} {n}" for name, n in labels.most_common(3))
    more = ", ..." if len(labels) > 3 else ""
    return f"seen in {frames} frames: {top}{more}"


def broker_text(snapshot: dict[str, Any]) -> str:
    m = snapshot.get("mqtt")
    if not isinstance(m, dict):
        return "off"
    if m.get("connected"):
        return "connected"
    waiting = (m.get("outbox") or {}).get("pending")
    return "down" + (f", {waiting} waiting" if waiting else "")


def banner(agent: Any) -> str:
    """What the agent runs, in a few lines (printed once at start)."""
    cfg = agent.config
    info = dict(getattr(agent, "model_info", {}) or {})
    boot = getattr(agent, "boot", None)
    version = info.get("version") or getattr(boot, "version", None)
    model = f"{info.get('name') or '?'}" + (f" {version}" if version else "")
    where = f" ({info.get('file')}, {info.get('source')})" if info.get("file") else ""
    source = getattr(getattr(getattr(agent, "pipeline", None), "reader", None), "source", None)
    pace = getattr(source, "pace_fps", None)
    paced = f", played at {pace:g} fps" if pace and not getattr(source, "live", True) else ""
    if getattr(source, "pace_own_rate", False) and not pace:
        paced = ", played at its own frame rate"
    broker = (f"mqtt://{cfg.mqtt.host}:{cfg.mqtt.port} as {cfg.device.id}" if cfg.mqtt.enabled
              else "off (mqtt.enabled = false)")
    cfg_file = getattr(agent, "config_path", None) or "built-in defaults"
    return "\n".join([
        f"edge-agent: model {model}{where}",
        f"  backend {info.get('backend') or '?'}, delegate {info.get('delegate') or 'cpu'}, "
        f"threads {info.get('threads') or cfg.model.threads}",
        f"  source {cfg.camera.source}{paced}; metrics every {cfg.metrics.interval_s:g} s",
        f"  broker {broker}",
        f"  state {cfg.device.state_dir}; config {cfg_file}",
    ])
