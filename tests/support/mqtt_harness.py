"""A small agent process for the MQTT tests: MqttComponent ticking with synthetic snapshots.

``python tests/support/mqtt_harness.py CONFIG.toml [--snapshot] [--pause-file F]`` prints
``READY`` once started; SIGTERM stops it cleanly (offline status). Each tick publishes a
metrics record and one inference-like event; while file F exists no tick makes a record (a
test can let the outbox drain with nothing new coming).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_agent.config import load_config
from edge_agent.mqtt.component import MqttComponent


class FakePipeline:
    def latest_snapshot(self) -> bytes:
        import cv2
        import numpy as np

        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :32] = (0, 0, 255)
        _ok, buf = cv2.imencode(".jpg", img)
        return bytes(buf)


class HarnessAgent:
    def __init__(self, path: Path, snapshot: bool) -> None:
        self.config_path = path
        self.config = load_config(path)
        self.pipeline: Any = FakePipeline() if snapshot else None


def main() -> None:
    agent = HarnessAgent(Path(sys.argv[1]), "--snapshot" in sys.argv)
    pause = Path(sys.argv[sys.argv.index("--pause-file") + 1]) if "--pause-file" in sys.argv \
        else None
    comp = MqttComponent()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    comp.start(agent)
    comp.on_started()
    comp.status_fields.update({"model": {"name": "blazeface", "version": "1"}, "backend": "litert"})
    assert comp.link is not None
    comp.link.wait_ready(10)  # subscribed to commands (if the broker is there)
    print("READY", flush=True)
    n = 0
    interval = agent.config.metrics.interval_s
    next_t = time.monotonic()
    while not stop.is_set():
        if pause is not None and pause.exists():
            stop.wait(interval)
            next_t = time.monotonic()
            continue
        n += 1
        snap: dict[str, Any] = {
            "schema": 1,
            "window_s": interval,
            "fps": {"captured": 30.0, "processed": 29.5, "dropped": 0.5},
            "latency_ms": {"e2e": {"p50": 3.0, "p95": 4.2, "p99": 5.0, "max": 6.0}},
            "cpu": {"process_percent": 12.5},
            "temperature": {"cpu_c": 48.0},
            "tick": n,
        }
        comp.contribute(snap)
        comp.on_tick(snap)
        comp.on_result({"detections": [{"label": "face", "score": 0.9}], "tick": n})
        next_t += interval
        stop.wait(max(0.0, next_t - time.monotonic()))
    comp.stop()


if __name__ == "__main__":
    main()
