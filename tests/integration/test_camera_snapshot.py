"""`edge-agent camera snapshot`: a real frame, the model's detections drawn when asked."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.support.helpers import DATA, run_cli


def _config(tmp_path: Path, source: str) -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n[camera]\nsource = "{source}"\n')
    return cfg


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def test_plain_and_annotated_snapshot(tmp_path: Path) -> None:
    cfg = _config(tmp_path, str(DATA / "astronaut.jpg"))
    plain, drawn = tmp_path / "plain.jpg", tmp_path / "drawn.jpg"
    r = run_cli("camera", "snapshot", str(plain), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "512x512, from the camera" in r.stdout
    r = run_cli("camera", "snapshot", str(drawn), "--annotate", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    faces = info["result"]["detections"]
    truth = json.loads((DATA / "astronaut_face.json").read_text())["box"]
    assert len(faces) == 1 and _iou(faces[0]["box"], truth) > 0.7
    a = cv2.imread(str(plain)).astype(int)
    b = cv2.imread(str(drawn)).astype(int)
    assert a.shape == b.shape == (512, 512, 3)
    x1, y1, x2, _y2 = (round(v) for v in faces[0]["box"])
    edge = b[y1 - 1 : y1 + 2, x1:x2]  # the box's top edge is drawn in green
    assert (edge[..., 1] > 200).mean() > 0.5 and (edge[..., 2] < 100).mean() > 0.5
    outside = np.abs(a[300:, :100] - b[300:, :100]).mean()
    assert outside < 3  # the rest of the frame is the same picture


def test_camera_absent_is_one_line_error(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "/dev/video97")
    out = tmp_path / "x.jpg"
    r = run_cli("camera", "snapshot", str(out), "--config", str(cfg))
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "/dev/video97" in r.stderr
    assert not out.exists()
