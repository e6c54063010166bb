"""Read-only view of a running :class:`~edge_agent.agent.lifecycle.Agent` for the ops components.

sd_notify, the control socket and status.json only read the agent; this module is the one
place that knows where each fact lives (pipeline counters, the model, MQTT/bridge/update
status fields), so the other modules stay independent of the agent's inner layout.
"""

from __future__ import annotations

import time
from typing import Any

from .. import __version__
from ..errors import EdgeAgentError


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if obj is None:
            return default
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return default if obj is None else obj


class AgentView:
    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.started = time.time()
        self._store: Any = None

    def processed(self) -> int:
        pipeline = getattr(self.agent, "pipeline", None)
        if pipeline is None:
            return 0
        counters = pipeline.counters()
        value = _get(counters, "processed", default=0)
        return int(value)

    def progress(self) -> int:
        """The agent's watchdog counter (:meth:`Agent.progress`): frames, or camera waits."""
        progress = getattr(self.agent, "progress", None)
        return int(progress()) if callable(progress) else self.processed()

    def camera(self) -> dict[str, Any]:
        """The camera reader's live stats (health, frames, last_error...), or {} before build."""
        pipeline = getattr(self.agent, "pipeline", None)
        reader = getattr(pipeline, "reader", None)
        return dict(reader.stats()) if reader is not None else {}

    def pipeline(self) -> dict[str, Any]:
        """The pipeline's schedule (which one runs and why), or {} before build."""
        pipeline = getattr(self.agent, "pipeline", None)
        info = getattr(pipeline, "schedule_info", None)
        return dict(info()) if callable(info) else {}

    def model_label(self) -> str:
        info = self.model_info()
        name = info.get("name") or "?"
        version = info.get("version")
        return f"{name} {version}" if version else str(name)

    def model_info(self) -> dict[str, Any]:
        """The agent's ``model_info`` (name, file, sha256, source, backend, delegate, threads)."""
        info = dict(getattr(self.agent, "model_info", None) or {})
        info.setdefault("name", None)
        return info

    def facts(self) -> dict[str, Any]:
        """Everything status needs that is not in the metrics snapshot."""
        cfg = self.agent.config
        return {
            "version": __version__,
            "device_id": cfg.device.id,
            "started": self.started,
            "uptime_s": round(time.time() - self.started, 1),
            "model": self.model_info(),
            "camera": {"source": cfg.camera.source, **self.camera()},
            "pipeline": self.pipeline(),
            "broker": {"enabled": cfg.mqtt.enabled, "host": cfg.mqtt.host, "port": cfg.mqtt.port},
            **store_facts(self.store()),
        }

    def store(self) -> Any:
        """One model store view for the agent's life (a damage found is reported once)."""
        if self._store is None:
            from ..updates.store import Store

            self._store = Store.for_config(self.agent.config)
        return self._store


def store_facts(store: Any) -> dict[str, Any]:
    """The last deployment the model store recorded (its outcome survives restarts) and the
    store's own health (``model_store``: ok, or recovered from damage and how)."""
    from ..updates.state import recovery_record

    try:
        s = store.load()
    except (EdgeAgentError, OSError) as exc:
        return {"update": {}, "model_store": {"state": "unusable", "problem": str(exc)}}
    d = s.deployment
    out: dict[str, Any] = {}
    if d is not None:
        out = {"deployment": d.id, "model": d.model, "version": d.version, "state": d.state}
        if d.reason:
            out["reason"] = d.reason
    return {"update": out, "model_store": recovery_record(s)}
