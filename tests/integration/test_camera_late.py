"""A camera that comes up after the agent (issue #10 item 7), on real processes.

The agent starts on an HTTP MJPEG camera that does not exist yet, with a real mosquitto and a
real NOTIFY_SOCKET: it must come up (READY, watchdog pings while it waits, control socket,
MQTT metrics saying ``reconnecting``), then pick the camera up when it appears.
"""

from __future__ import annotations

import json
import queue
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_agent_ops import AgentProcess, NotifyListener, _wait, write_config
from tests.support.helpers import run_cli
from tests.support.ops import MjpegCamera, free_port, mosquitto

WAITING = ("reconnecting", "failed")


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for a in started:
        a.kill()


def _status(cfg: Path) -> dict[str, Any]:
    r = run_cli("status", "--json", "--config", str(cfg), timeout=30)
    assert r.returncode == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


class MetricsReader:
    """Subscribes to the device's metrics stream on the real broker."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.records: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="late-camera-reader")
        self.client.on_message = lambda _c, _u, msg: self.records.put(json.loads(msg.payload))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def wait_camera(self, health: tuple[str, ...], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                rec = self.records.get(timeout=0.5)
            except queue.Empty:
                continue
            if (rec.get("camera") or {}).get("health") in health:
                return rec
        raise AssertionError(f"no metrics record with camera health {health!r}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_camera_that_comes_up_late_is_picked_up(
    tmp_path: Path, agents: list[AgentProcess]
) -> None:
    cam_port = free_port()
    url = f"http://127.0.0.1:{cam_port}/stream.mjpg"
    notify = NotifyListener(tmp_path / "notify.sock")
    with mosquitto(tmp_path) as (_proc, port):
        cfg = write_config(tmp_path, url, f"[mqtt]\nenabled = true\nport = {port}\n")
        metrics = MetricsReader(port, "edge/ops-test/metrics")
        camera: MjpegCamera | None = None
        try:
            agent = AgentProcess(cfg, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="1500000")
            agents.append(agent)
            # up without its camera: READY (components started, model loaded), pings go on
            notify.wait_for(lambda: notify.count("READY=1") == 1, 60, "READY=1")
            t_ready = time.monotonic()
            notify.wait_for(lambda: notify.count("WATCHDOG=1", t_ready) >= 3, 10, "pings")
            assert any(
                m.startswith("STATUS=") and "camera reconnecting: " in m and url in m
                for _, m in notify.messages
            ), notify.messages[-5:]
            st = _status(cfg)
            # "failed": still retrying, at the longest backoff (reconnect_max_s = 1 s here)
            assert st["running"] is True and st["camera"]["health"] in WAITING, st
            assert url in st["camera"]["last_error"] and st["camera"]["frames"] == 0
            rec = metrics.wait_camera(WAITING, 20)  # MQTT works meanwhile
            assert rec["frames"]["processed"] == 0, rec
            r = run_cli("doctor", "--json", "--config", str(cfg), timeout=60)
            checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
            assert checks["camera"]["status"] == "FAIL", checks["camera"]
            assert "the running agent is waiting for it" in checks["camera"]["detail"]
            assert checks["broker"]["status"] == "PASS", checks["broker"]
            assert agent.proc.poll() is None

            camera = MjpegCamera(fps=20, port=cam_port)  # the camera boots
            assert _wait(lambda: _status(cfg)["camera"]["health"] == "ok", 30), _status(cfg)
            rec = metrics.wait_camera(("ok",), 20)
            assert _wait(lambda: _status(cfg)["metrics"]["frames"]["processed"] > 0, 20)
            assert notify.count("READY=1") == 1

            agent.signal(signal.SIGTERM)
            assert agent.proc.wait(10) == 0
            tracebacks = [ln for ln in agent.stderr if "Traceback" in ln]
            assert not tracebacks, agent.stderr
            # the unreachable camera was reported, throttled: not one line per retry
            refused = [ln for ln in agent.stderr if "WARNING" in ln and url in ln]
            assert 1 <= len(refused) <= 3, refused
            # FFmpeg's own "[tcp @ 0x…] Connection refused" came through the logger, never raw
            assert not [ln for ln in agent.stderr if ln.startswith("[")], agent.stderr
            assert any("ffmpeg tcp: " in ln and "Connection refused" in ln for ln in agent.stderr)
        finally:
            metrics.close()
            notify.close()
            if camera is not None:
                camera.close()
