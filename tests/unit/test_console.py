"""``edge-agent run``'s console (issue 12): the banner, the interval line (what was seen, the
broker), no line for a last window cut short, the broker warning at once; file sources paced."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from types import SimpleNamespace

from edge_agent.agent.console import ConsoleReporter, banner, broker_text
from edge_agent.camera.sources import (
    FOLDER_PACE_FPS,
    IMAGE_PACE_FPS,
    default_pace,
    open_source,
)
from edge_agent.config import CameraConfig, parse_config
from edge_agent.inference.result import Detection, Result

ROOT = Path(__file__).resolve().parents[2]


def _snap(window: float, mqtt: dict | None = None) -> dict:
    snap = {"window": {"seconds": window}, "fps": {"captured": 2.0, "processed": 2.0,
            "dropped": 0.0}, "latency_ms": {}, "cpu": {}, "rss_mb": 100.0,
            "camera": {"health": "ok"}}
    if mqtt is not None:
        snap["mqtt"] = mqtt
    return snap


def _agent(**cfg: object) -> SimpleNamespace:
    return SimpleNamespace(
        config=parse_config({"metrics": {"interval_s": 5}, **cfg}), boot=None, pipeline=None,
        config_path=None,
        model_info={"name": "digits", "version": "2.0", "file": "digits.tflite",
                    "source": "store:active", "backend": "litert", "delegate": "cpu"})


def test_banner_and_interval_lines() -> None:
    out = io.StringIO()
    c = ConsoleReporter(out)
    c.start(_agent(mqtt={"enabled": False}))
    head = out.getvalue()
    assert "model digits 2.0 (digits.tflite, store:active)" in head
    assert "backend litert, delegate cpu" in head and "broker off" in head
    assert "config built-in defaults" in head
    det = Detection(box=(0, 0, 1, 1), score=0.9, class_id=0, label="face")
    for _ in range(3):
        c.on_result(SimpleNamespace(result=Result("detection", detections=[det, det])))
    c.on_result(SimpleNamespace(result=Result("detection")))
    c.on_tick(_snap(5.0, {"connected": False, "outbox": {"pending": 7}}))
    line = out.getvalue().splitlines()[-1]
    assert line.endswith("| seen in 3 frames: face 6 | broker down, 7 waiting"), line
    c.on_tick(_snap(5.0, {"connected": True}))
    assert out.getvalue().splitlines()[-1].endswith("| seen nothing | broker connected")
    n = len(out.getvalue().splitlines())
    c.on_tick(_snap(0.4))  # the stop came 0.4 s into an interval of 5: no line
    assert len(out.getvalue().splitlines()) == n
    assert broker_text({}) == "off"


def test_unreachable_broker_is_warned_at_once() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = io.StringIO()
    c = ConsoleReporter(out)
    c.start(_agent(mqtt={"enabled": True, "host": "127.0.0.1", "port": port}))
    import time

    for _ in range(200):
        if "warning: broker" in out.getvalue():
            break
        time.sleep(0.01)
    assert f"warning: broker 127.0.0.1:{port} does not answer" in out.getvalue()


def test_file_sources_are_paced_like_a_camera(tmp_path: Path) -> None:
    image = ROOT / "tests" / "data" / "coffee.jpg"
    one = open_source(CameraConfig(source=str(image)))
    default_pace(one, "latest")
    assert one.pace_fps == IMAGE_PACE_FPS
    folder = open_source(CameraConfig(source=str(image.parent)))
    default_pace(folder, "latest")
    assert folder.pace_fps == FOLDER_PACE_FPS
    video = open_source(CameraConfig(source=str(ROOT / "models" / "demo_astronaut.mp4"),
                                     loop=False))
    default_pace(video, "latest")
    video.open()
    try:
        assert video.pace_fps == 15.0  # the clip's own rate
    finally:
        video.close()
    given = open_source(CameraConfig(source=str(image), fps=7))
    default_pace(given, "latest")
    every = open_source(CameraConfig(source=str(image)))
    default_pace(every, "all")  # every frame, one by one: not paced
    assert given.pace_fps == 7 and every.pace_fps is None
    live = open_source(CameraConfig(source="synthetic"))
    before = live.pace_fps
    default_pace(live, "latest")
    assert live.pace_fps == before
    assert "played at 1 fps" in banner(SimpleNamespace(
        config=parse_config({}), model_info={}, boot=None, config_path=None,
        pipeline=SimpleNamespace(reader=SimpleNamespace(source=one))))
