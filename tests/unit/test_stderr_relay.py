"""Native fd-2 lines -> the logger, throttled (pure classification + a real child process)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from edge_agent.common.throttle import cause_of
from edge_agent.ops.stderr_relay import classify, native_why
from tests.support.helpers import ROOT, cli_env


@pytest.mark.parametrize(
    ("line", "logger", "level", "message"),
    [
        (
            "[tcp @ 0x7f3180004f00] Connection to tcp://127.0.0.1:8554 failed: Connection refused",
            "edge_agent.camera", logging.WARNING,
            "ffmpeg tcp: Connection to tcp://127.0.0.1:8554 failed: Connection refused",
        ),
        ("[mjpeg @ 0x55d0c1a2b3c0] overread 8", "edge_agent.camera", logging.WARNING,
         "ffmpeg mjpeg: overread 8"),
        ("[ WARN:0@0.018] global cap.cpp:212 open VIDEOIO(FFMPEG): can't open",
         "edge_agent.camera", logging.WARNING, "opencv: global cap.cpp:212 open VIDEOIO(FFMPEG): "
         "can't open"),
        ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "edge_agent.inference",
         logging.DEBUG, "runtime: Created TensorFlow Lite XNNPACK delegate for CPU."),
        ("something else", "edge_agent.native", logging.WARNING, "native: something else"),
    ],
)
def test_classify(line: str, logger: str, level: int, message: str) -> None:
    assert classify(line) == (logger, level, message)


def test_blank_and_causes() -> None:
    assert classify("  \n") is None
    a = "ffmpeg mjpeg: error y=12 x=40 at 0x55d0c1a2b3c0"
    b = "ffmpeg mjpeg: error y=7 x=3 at 0x55d0c1a2b3ff"
    assert cause_of(a) == cause_of(b) != cause_of("ffmpeg mjpeg: overread 8")


CHILD = textwrap.dedent(
    """
    import os, sys
    from edge_agent.ops import logging_setup
    from edge_agent.ops.stderr_relay import StderrRelay
    logging_setup.configure("json", "INFO")
    relay = StderrRelay()
    assert relay.start()
    for k in range(500):  # what FFmpeg does on a damaged MJPEG stream, from C, on fd 2
        os.write(2, b"[mjpeg @ 0x55d0c1a2b%03x] error y=%d x=%d\\n" % (k, k % 40, k % 7))
    os.write(2, b"[tcp @ 0x7f31] Connection to tcp://127.0.0.1:1 failed: Connection refused\\r")
    print("from python", file=sys.stderr)  # sys.stderr now bypasses the pipe
    relay.stop()
    os.write(2, b"fd 2 is the real stderr again\\n")
    """
)


def test_a_flood_on_fd2_becomes_two_log_records() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60,
        env=cli_env(), cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "from python" in lines and lines[-1] == "fd 2 is the real stderr again"
    records = [json.loads(ln) for ln in lines if ln.startswith("{")]
    assert len(records) + 2 == len(lines), lines  # nothing else came out raw
    mjpeg = [r["msg"] for r in records if "mjpeg" in r["msg"]]
    assert mjpeg[0].startswith("ffmpeg mjpeg: error y=0 x=0"), mjpeg
    assert len(mjpeg) == 2 and "499 more like this" in mjpeg[1], mjpeg
    assert all(r["logger"] == "edge_agent.camera" for r in records)
    assert any("Connection refused" in r["msg"] for r in records)


def test_native_why_keeps_the_camera_lines_once() -> None:
    refused = "[tcp @ 0x7f31] Connection to tcp://127.0.0.1:554 failed: Connection refused"
    lines = [refused, "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", refused, ""]
    assert native_why(lines) == (
        "ffmpeg tcp: Connection to tcp://127.0.0.1:554 failed: Connection refused"
    )
    assert native_why([]) == ""
