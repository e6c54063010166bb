"""Repeated warnings are throttled per cause on a real ``edge-agent run`` (issue #10 item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.support.helpers import MODELS, run_cli


def test_folder_with_non_images_warns_once_per_cause(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    img = np.full((72, 96, 3), 200, np.uint8)
    for k in range(2):
        assert cv2.imwrite(str(folder / f"good{k}.png"), img)
    for k in range(40):
        (folder / f"notes{k:02d}.txt").write_text("not an image\n")
    (folder / "empty.jpg").write_bytes(b"")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[model]\npath = "{MODELS / "digits_int8.tflite"}"\n'
        f'[camera]\nsource = "{folder}"\nfps = 1000\n'
        "[metrics]\ninterval_s = 0.5\n",
        encoding="utf-8",
    )
    proc = run_cli("--log-format", "json", "run", "--config", str(cfg), "--duration", "3",
                   timeout=90)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(ln) for ln in proc.stderr.splitlines() if ln.startswith("{")]
    assert len(records) == len(proc.stderr.splitlines()), proc.stderr  # nothing raw
    bad = [r["msg"] for r in records if r["level"] == "WARNING" and "skipped" in r["msg"]]
    # 41 bad files a pass, hundreds of passes: the first line, then at most one count a minute
    # (and the count still held back at stop); before the throttle this was one line a file
    assert 1 <= len(bad) <= 2, bad
    assert "notes00.txt" in bad[0] or "empty.jpg" in bad[0], bad
    if len(bad) == 2:
        assert "more like this in the last" in bad[1], bad
    summary = proc.stdout.strip().splitlines()[-1]
    processed = int(summary.split(" processed ")[1].split()[0])
    # the good images went on being read, pass after pass (2 a pass; under load the start-up
    # can take 2 of the 3 s, so no rate is asserted: 94 in a CI run under load, 300+ idle)
    assert processed >= 20, summary
