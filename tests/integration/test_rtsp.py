"""RTSP for real (issue #10 item 8): the agent against GStreamer's RTSP server on loopback.

One agent process lives through the whole story a fleet camera tells: it is not there yet at
start, it boots, it hangs (RTP stops, the session stays up), it comes back, it reboots (the
server process ends and a new one starts on the same port). After each step the agent reads
frames again, and FFmpeg's/OpenCV's own stderr lines never come out raw: with
``--log-format json`` every stderr line is a log record.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.ops.control import request
from tests.integration.test_agent_ops import AgentProcess, write_config
from tests.support.helpers import run_cli
from tests.support.ops import RtspCamera

WAITING = ("reconnecting", "failed")


@pytest.fixture
def rtsp() -> Iterator[RtspCamera]:
    cam = RtspCamera()
    yield cam
    cam.stop()


def _camera(cfg: Path) -> dict[str, Any]:
    """The running agent's camera status, through its control socket (what ``status`` asks)."""
    data: dict[str, Any] = request(cfg.parent / "state" / "agent.sock", "status")["camera"]
    return data


def _until(cfg: Path, pred: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    cam: dict[str, Any] = {}
    while time.monotonic() < deadline:
        cam = _camera(cfg)
        if pred(cam):
            return cam
        time.sleep(0.2)
    raise AssertionError(f"camera never {what}: {cam}")


def test_rtsp_late_start_stall_restart(tmp_path: Path, rtsp: RtspCamera) -> None:
    cfg = write_config(tmp_path, rtsp.url)
    agent = AgentProcess(cfg, root_args=("--log-format", "json"))
    try:
        agent.wait_line("control socket on", timeout=60)
        cam = _until(cfg, lambda c: c["health"] in WAITING, 20, "reconnecting before the server")
        assert rtsp.url in cam["last_error"]

        rtsp.start()  # the camera boots after the agent
        cam = _until(cfg, lambda c: c["health"] == "ok" and c["frames"] > 5, 30, "read")
        assert cam["resolution"] == [160, 120]

        rtsp.stall()  # RTP stops, the session stays: the read times out, the reader reconnects
        _until(cfg, lambda c: c["health"] in WAITING, 30, "noticed the stall")
        rtsp.resume()
        before = _camera(cfg)["frames"]
        cam = _until(cfg, lambda c: c["health"] == "ok" and c["frames"] > before, 30, "resumed")

        rtsp.stop()  # the camera reboots: a new server process on the same port
        _until(cfg, lambda c: c["health"] in WAITING, 30, "noticed the server going away")
        rtsp.start()
        before = _camera(cfg)["frames"]
        cam = _until(cfg, lambda c: c["health"] == "ok" and c["frames"] > before, 30, "back")
        assert cam["reconnects"] >= 2, cam

        agent.signal(signal.SIGTERM)
        assert agent.proc.wait(10) == 0
    finally:
        agent.kill()
    time.sleep(0.2)  # the reader thread has seen EOF by now
    raw = [ln for ln in agent.stderr if not ln.startswith("{")]
    assert not raw, raw  # FFmpeg/OpenCV lines came through the logger, never raw
    records = [json.loads(ln) for ln in agent.stderr]
    native = [r["msg"] for r in records if r["msg"].startswith(("ffmpeg ", "opencv: "))]
    assert native, "FFmpeg/OpenCV said nothing about a camera that went away?"
    # throttled per cause: a handful of lines for minutes of retries, not one per attempt
    assert len(native) < 20, native
    print("\n".join(["native lines logged:", *native]))


def test_snapshot_of_an_rtsp_camera_that_is_down_is_one_line(tmp_path: Path) -> None:
    """One-shot commands fold FFmpeg's reason into their one-line error."""
    cam = RtspCamera()  # not started: nothing listens on its port
    cfg = write_config(tmp_path, cam.url)
    r = run_cli("camera", "snapshot", str(tmp_path / "x.jpg"), "--config", str(cfg), timeout=60)
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert cam.url in lines[0] and "Connection refused" in lines[0], lines
