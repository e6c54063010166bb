"""``GET /metrics``: the device in Prometheus exposition, made with ``prometheus-client``.

Names follow Prometheus practice: base units (seconds, bytes, ``_celsius``, ``_watts``),
``_total`` counters, ``_info`` gauges of value 1 for identities; labels only with small fixed
value sets (stage, drop reason, camera state), never per frame, per request or per client.

- per-stage latency histograms (``edge_agent_stage_latency_seconds{stage}``) are the
  pipeline's own since-start histograms (``device.latencies()``), binned into :data:`BUCKETS`
  at scrape time (:func:`stage_latency_family`): a processed frame costs the pipeline nothing
  more for Prometheus. Counts and sums are exact; a value within 0.5 % of a bucket bound may be
  counted on its other side (the pipeline's histograms' relative accuracy);
- everything else is read at scrape time from the pipeline counters, the camera reader, the
  last metrics snapshot (CPU, temperatures, the bridge, MQTT's outbox) and the API's own
  counters (:class:`DeviceCollector`), so there is no second bookkeeping to drift;
- ``process_*`` (CPU seconds, resident memory, open fds) come from prometheus-client's
  standard process collector.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..telemetry.histogram import Histogram as LatencyHistogram

STAGES = ("age", "preprocess", "invoke", "postprocess", "e2e")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0)
DROP_REASONS = ("stale", "error", "swap", "shutdown")
CAMERA_STATES = ("starting", "ok", "reconnecting", "failed", "ended", "stopped")


def stage_latency_family(hists: Mapping[str, LatencyHistogram]) -> HistogramMetricFamily:
    """``edge_agent_stage_latency_seconds{stage}`` from the pipeline's histograms (module doc)."""
    fam = HistogramMetricFamily("edge_agent_stage_latency_seconds",
                                "Seconds per pipeline stage of each processed frame "
                                "(age: capture to pickup; e2e: capture to result)",
                                labels=["stage"])
    for stage in STAGES:
        h = hists.get(stage)
        if h is None:
            continue
        counts = h.counts_at_most(BUCKETS)
        buckets = [(floatToGoString(b), float(c)) for b, c in zip(BUCKETS, counts, strict=True)]
        fam.add_metric([stage], [*buckets, ("+Inf", float(h.count))], sum_value=h.sum)
    return fam


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _gauge(name: str, doc: str, value: Any) -> Iterator[Metric]:
    v = _num(value)
    if v is not None:
        yield GaugeMetricFamily(name, doc, value=v)


class DeviceCollector(Collector):
    """Reads the device at scrape time. ``device`` gives ``counters()`` and ``latencies()``
    (the pipeline's), ``camera()``, ``model_info()``, ``snapshot()`` (the last heartbeat's),
    ``api_counts()``."""

    def __init__(self, device: Any, version: str) -> None:
        self.device = device
        self.version = version

    def collect(self) -> Iterator[Metric]:
        d = self.device
        info = GaugeMetricFamily("edge_agent_info", "The agent", labels=["version"])
        info.add_metric([self.version], 1)
        yield info
        m = d.model_info()
        mi = GaugeMetricFamily("edge_agent_model_info", "The model the pipeline runs",
                               labels=["name", "version", "sha256", "backend", "delegate"])
        mi.add_metric([str(m.get(k) or "") for k in
                       ("name", "version", "sha256", "backend", "delegate")], 1)
        yield mi
        c = d.counters() or {}
        for key, doc in (("captured", "Frames the camera reader handed over"),
                         ("processed", "Frames that went through every stage")):
            yield CounterMetricFamily(f"edge_agent_frames_{key}", doc,
                                      value=_num(c.get(key)) or 0.0)
        dropped = CounterMetricFamily("edge_agent_frames_dropped", "Frames discarded, by reason",
                                      labels=["reason"])
        by = c.get("dropped_by") or {}
        for r in DROP_REASONS:
            dropped.add_metric([r], _num(by.get(r)) or 0.0)
        yield dropped
        yield CounterMetricFamily("edge_agent_frame_errors", "Frames whose stage raised",
                                  value=_num(c.get("errors")) or 0.0)
        yield CounterMetricFamily("edge_agent_model_swaps", "Model hot swaps",
                                  value=_num(c.get("swaps")) or 0.0)
        yield from _gauge("edge_agent_frames_in_flight", "Frames between capture and result",
                          c.get("in_flight"))
        yield stage_latency_family(d.latencies())
        snap = d.snapshot() or {}
        eco = (snap.get("pipeline") or {}).get("economy") or {}
        yield from _gauge("edge_agent_interpreter_threads", "Interpreter threads the pipeline "
                          "runs on (1 while pipeline.economy saves CPU at camera rate)",
                          eco.get("threads_in_use"))
        fps = snap.get("fps") or {}
        g = GaugeMetricFamily("edge_agent_fps", "Frames per second over the last metrics window",
                              labels=["kind"])
        for kind in ("captured", "processed", "dropped"):
            g.add_metric([kind], _num(fps.get(kind)) or 0.0)
        yield g
        cam = d.camera() or {}
        health = cam.get("health")
        up = GaugeMetricFamily("edge_agent_camera_state", "Camera reader state (1 = current)",
                               labels=["state"])
        for s in CAMERA_STATES:
            up.add_metric([s], 1.0 if health == s else 0.0)
        yield up
        yield GaugeMetricFamily("edge_agent_camera_up", "1 when the camera delivers frames",
                                value=1.0 if health == "ok" else 0.0)
        yield CounterMetricFamily("edge_agent_camera_reconnects", "Camera reconnections",
                                  value=_num(cam.get("reconnects")) or 0.0)
        yield CounterMetricFamily("edge_agent_camera_bad_frames", "Undecodable frames skipped",
                                  value=_num(cam.get("bad_frames")) or 0.0)
        cpu = snap.get("cpu") or {}
        pct = _num(cpu.get("percent_of_available"))
        if pct is not None:
            yield GaugeMetricFamily("edge_agent_cpu_ratio", "CPU used of what the agent may use "
                                    "(1 = all of it), last window", value=pct / 100.0)
        yield from _gauge("edge_agent_cpu_available_cores", "CPUs the agent may run on",
                          cpu.get("available_cores"))
        temp = snap.get("temperature") or {}
        yield from _gauge("edge_agent_cpu_temperature_celsius", "Hottest thermal zone",
                          temp.get("cpu_c"))
        bridge = snap.get("bridge") or {}
        if isinstance(bridge, dict) and bridge:
            yield GaugeMetricFamily("edge_agent_bridge_connected", "Firmware bridge link up",
                                    value=1.0 if bridge.get("connected") else 0.0)
            t = GaugeMetricFamily("edge_agent_board_temperature_celsius",
                                  "Board temperatures from the firmware bridge", labels=["sensor"])
            for sensor, key in (("board", "board_temp_c"), ("accelerator", "accel_temp_c")):
                v = _num(bridge.get(key))
                if v is not None:
                    t.add_metric([sensor], v)
            yield t
            yield from _gauge("edge_agent_board_power_watts", "Board main rail power",
                              bridge.get("power_w"))
            yield from _gauge("edge_agent_board_fan_rpm", "Board fan speed", bridge.get("fan_rpm"))
        mqtt = snap.get("mqtt") or {}
        if isinstance(mqtt, dict) and mqtt:
            yield GaugeMetricFamily("edge_agent_mqtt_connected", "Broker link up",
                                    value=1.0 if mqtt.get("connected") else 0.0)
            outbox = mqtt.get("outbox") or {}
            yield GaugeMetricFamily("edge_agent_outbox_pending_records",
                                    "Records stored, not yet acknowledged by the broker",
                                    value=_num(outbox.get("pending")) or 0.0)
            lost = sum(_num(v) or 0.0 for v in (outbox.get("dropped") or {}).values())
            lost += _num(outbox.get("unstored")) or 0.0
            yield CounterMetricFamily("edge_agent_outbox_lost_records",
                                      "Records dropped by the outbox caps or never stored",
                                      value=lost)
        api = d.api_counts()
        inf = CounterMetricFamily("edge_agent_http_infer_requests", "/v1/infer requests by "
                                  "outcome", labels=["outcome"])
        for k in ("ok", "busy", "bad_input", "failed"):
            inf.add_metric([k], float(api.get(k, 0)))
        yield inf
        yield CounterMetricFamily("edge_agent_http_infer_throttled", "/v1/infer requests that "
                                  "waited for the duty cap (http.infer_duty) while the camera "
                                  "pipeline was contended", value=float(api.get("throttled", 0)))
        duty = api.get("duty_cap") or {}
        yield CounterMetricFamily("edge_agent_http_infer_throttle_seconds",
                                  "Seconds /v1/infer requests waited for the duty cap",
                                  value=float(duty.get("throttle_wait_s", 0.0)))
        yield GaugeMetricFamily("edge_agent_http_infer_capped", "1 while /v1/infer is held to "
                                "http.infer_duty (the camera pipeline is contended)",
                                value=1.0 if duty.get("capped") else 0.0)
        yield GaugeMetricFamily("edge_agent_http_stream_clients", "Open /v1/stream.mjpg viewers",
                                value=float(api.get("stream_clients", 0)))


def build_registry(device: Any, version: str) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DeviceCollector(device, version))
    ProcessCollector(registry=reg)
    return reg


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST

