"""The agent's status record (pure): built from the metrics snapshot + facts, and rendered.

One record answers every question a technician asks first: which model and version, which
backend and delegate, how fast, how slow per stage (p95), camera, broker, bridge, the last
update's outcome and uptime. ``edge-agent status --json`` prints it as is.
"""

from __future__ import annotations

import time
from typing import Any

SCHEMA = 1


def _stage_p95(snapshot: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    latency = snapshot.get("latency_ms") or snapshot.get("latency") or {}
    if isinstance(latency, dict):
        for stage, stats in latency.items():
            if isinstance(stats, dict) and isinstance(stats.get("p95"), (int, float)):
                out[stage] = round(float(stats["p95"]), 3)
    return out


def _broker(snapshot: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    out = dict(facts.get("broker") or {})
    link = snapshot.get("mqtt")
    if isinstance(link, dict):
        out["connected"] = link.get("connected")
        if link.get("last_error"):
            out["last_error"] = link["last_error"]
        if link.get("degraded"):  # the outbox cannot store records (disk full...)
            out["degraded"] = link["degraded"]
        outbox = link.get("outbox")
        if isinstance(outbox, dict):
            out["outbox_pending"] = outbox.get("pending")
            if outbox.get("unstored"):
                out["outbox_unstored"] = outbox["unstored"]
    return out


def summarize(
    snapshot: dict[str, Any], facts: dict[str, Any], *, state: str, pid: int
) -> dict[str, Any]:
    fps = snapshot.get("fps") if isinstance(snapshot.get("fps"), dict) else {}
    return {
        "schema": SCHEMA,
        "state": state,
        "pid": pid,
        "updated": time.time(),
        "version": facts.get("version"),
        "device_id": facts.get("device_id"),
        "uptime_s": facts.get("uptime_s"),
        "model": facts.get("model", {}),
        "fps": fps,
        "latency_p95_ms": _stage_p95(snapshot),
        # the live camera facts win over the last heartbeat's (health changes between them)
        "camera": {**(snapshot.get("camera") or {}), **facts.get("camera", {})},
        "pipeline": {**(snapshot.get("pipeline") or {}), **(facts.get("pipeline") or {})},
        "broker": _broker(snapshot, facts),
        "bridge": snapshot.get("bridge") or facts.get("bridge") or {},
        "thermal": snapshot.get("thermal") or {},
        "update": {**(facts.get("update") or {}), **(snapshot.get("update") or {})},
        "model_store": facts.get("model_store") or {},
        "metrics": snapshot,
    }


def _fmt_dict(d: Any) -> str:
    if not isinstance(d, dict) or not d:
        return "-"
    return ", ".join(f"{k}={_value(v)}" for k, v in d.items() if not isinstance(v, (dict, list)))


def _value(v: Any) -> str:
    """A value as a technician reads it: ``-`` for none, ``yes``/``no`` (never Python's None,
    True, False)."""
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def _dict(status: dict[str, Any], key: str) -> dict[str, Any]:
    v = status.get(key)
    return v if isinstance(v, dict) else {}


def _when(t: Any) -> str:
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    except (OverflowError, OSError, ValueError):
        return "?"


def render(status: dict[str, Any], *, running: bool) -> str:
    """Human text: one line per topic. Any field of the wrong type (a damaged status.json)
    shows as ``?`` or ``-``; rendering never fails."""
    model = _dict(status, "model")
    lines = []
    if running:
        lines.append(f"agent: running (pid {_value(status.get('pid'))}, up "
                     f"{_value(status.get('uptime_s'))} s)")
    else:
        state = status.get("state")
        crashed = " (it did not stop cleanly: crashed or killed)" if state == "running" else ""
        lines.append(
            f"agent: not running; last state {state!r} at {_when(status.get('updated'))}{crashed}"
        )
    lines.append(
        f"model: {_value(model.get('name'))} {model.get('version') or ''} "
        f"sha256 {str(model.get('sha256') or '?')[:12]}".replace("  ", " ")
    )
    backend = " ".join(str(x) for x in (model.get("backend"), model.get("backend_version")) if x)
    lines.append(f"backend: {backend or '?'}, delegate {model.get('delegate') or 'cpu'}")
    lines.append(f"fps: {_fmt_dict(status.get('fps'))}")
    lines.append(f"p95 ms: {_fmt_dict(status.get('latency_p95_ms'))}")
    lines.append(f"camera: {_fmt_dict(status.get('camera'))}")
    lines.append(f"pipeline: {_fmt_dict(status.get('pipeline'))}")
    eco = _dict(_dict(status, "pipeline"), "economy")
    if eco:
        lines.append(f"economy: {_value(eco.get('threads_in_use'))} interpreter thread(s), "
                     f"{_value(eco.get('setting'))}: {_value(eco.get('reason'))}")
    lines.append(f"broker: {_fmt_dict(status.get('broker'))}")
    lines.append(f"bridge: {_fmt_dict(status.get('bridge'))}")
    thermal = _dict(status, "thermal")
    if thermal:
        by = thermal.get("rate_limited_by")
        cap = f"capped at {thermal.get('cap_fps')} fps by {by}" if by else "not capped"
        lines.append(
            f"thermal: {cap}, hottest {thermal.get('hottest')} forecast "
            f"{thermal.get('forecast_c')} °C (target {thermal.get('target_c')}), capped "
            f"{thermal.get('capped_s')} s in all"
        )
    lines.append(f"last update: {_fmt_dict(status.get('update'))}")
    store = _dict(status, "model_store")
    if store.get("state") not in (None, "ok"):
        lines.append(
            f"model store: {store.get('state')} from {store.get('source', '?')} at "
            f"{_when(store.get('at'))} after: {store.get('problem', '?')}"
        )
    return "\n".join(lines)
