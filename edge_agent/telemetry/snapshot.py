"""The metrics snapshot (schema in docs/metrics.md) and the one-line console summary."""

from __future__ import annotations

from typing import Any

from .histogram import Histogram
from .latency import summarize

SCHEMA = "edge-agent/metrics/1"


def build_snapshot(
    *,
    agent_version: str,
    window_start: float,
    window_end: float,
    wall_time: float,
    counters: dict[str, Any],
    previous: dict[str, Any] | None,
    latencies: dict[str, Histogram],
    resources: dict[str, Any],
    camera: dict[str, Any],
    model: dict[str, Any],
    pipeline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One interval's metrics. ``previous``: the counters at the start of the window;
    ``pipeline``: the schedule in force (and how busy the interpreter was), when known.

    Top-level ``seq``, ``ts`` and ``device`` are left to the MQTT publisher (docs/mqtt.md).
    """
    seconds = max(window_end - window_start, 1e-9)
    prev = previous or {}

    def rate(key: str) -> float:
        return round((counters.get(key, 0) - prev.get(key, 0)) / seconds, 2)

    snap: dict[str, Any] = {
        "schema": SCHEMA,
        "agent_version": agent_version,
        "window": {
            "seconds": round(seconds, 3),
            "start": round(wall_time - seconds, 3),
            "end": round(wall_time, 3),
        },
        "fps": {
            "captured": rate("captured"),
            "processed": rate("processed"),
            "dropped": rate("dropped"),
        },
        "frames": counters,
        "latency_ms": summarize(latencies),
        "camera": camera,
        "model": model,
        **resources,
    }
    if pipeline is not None:
        snap["pipeline"] = pipeline
    return snap


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}"


def summary_line(snap: dict[str, Any]) -> str:
    """``fps in/out/drop | stage p50/p95 ms | cpu | rss`` on one line for the console."""
    fps = snap["fps"]
    lat = snap["latency_ms"]
    stages = " ".join(
        f"{name}={_ms(lat[key]['p50'])}/{_ms(lat[key]['p95'])}"
        for key, name in (
            ("preprocess", "pre"), ("invoke", "inv"), ("postprocess", "post"), ("e2e", "e2e"),
        )
        if key in lat
    )
    cam = snap.get("camera", {})
    health = cam.get("health", "?")
    return (
        f"fps in {fps['captured']:.1f} out {fps['processed']:.1f} drop {fps['dropped']:.1f} | "
        f"ms p50/p95 {stages} | cpu {_percent(snap['cpu'].get('process_percent'))} "
        f"rss {snap['rss_mb']:.0f}MB | camera {health}"
    )


def _percent(value: Any) -> str:
    """``25%``, or ``unknown`` when the process's CPU time could not be measured."""
    return f"{value:.0f}%" if isinstance(value, (int, float)) else "unknown"


def final_summary(totals: dict[str, Any], counters: dict[str, Any], seconds: float) -> str:
    """The closing line: frames, mean rates and latency percentiles over the whole run."""
    secs = max(seconds, 1e-9)
    inv = totals.get("invoke", {})
    e2e = totals.get("e2e", {})
    return (
        f"done: {seconds:.1f} s, captured {counters['captured']} processed "
        f"{counters['processed']} dropped {counters['dropped']} errors {counters['errors']} | "
        f"fps in {counters['captured'] / secs:.1f} out {counters['processed'] / secs:.1f} | "
        f"invoke p50 {_ms(inv.get('p50'))} p95 {_ms(inv.get('p95'))} ms | "
        f"e2e p50 {_ms(e2e.get('p50'))} p95 {_ms(e2e.get('p95'))} ms"
    )
