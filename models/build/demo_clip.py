#!/usr/bin/env python3
"""Build models/demo_astronaut.mp4: the demo clip `camera.source = "demo"` plays.

A 4.8-second 640x480 MPEG-4 (mp4v) clip at 15 fps: a slow pan and zoom over
tests/data/astronaut.jpg (scikit-image's astronaut photo, public domain, NASA), so the shipped
face detector has a face to find. Needs only OpenCV (no TensorFlow).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edge_agent.camera.clips import pan_zoom_frames, write_clip  # noqa: E402

FRAMES, FPS = 72, 15.0


def main() -> None:
    photo = cv2.imread(str(ROOT / "tests" / "data" / "astronaut.jpg"))
    if photo is None:
        raise SystemExit("tests/data/astronaut.jpg missing")
    out = ROOT / "models" / "demo_astronaut.mp4"
    n = write_clip(out, pan_zoom_frames(photo, FRAMES), fps=FPS, fourcc="mp4v")
    print(f"{out}: {n} frames, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
