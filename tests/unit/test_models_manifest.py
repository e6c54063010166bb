"""Every shipped model file matches the sha256 recorded in models/README.md (catches drift)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \| `([0-9a-f]{64})` \|$")
LIMIT_BYTES = 5 * 1024 * 1024


def _manifest() -> dict[str, tuple[int, str]]:
    rows: dict[str, tuple[int, str]] = {}
    for line in (MODELS / "README.md").read_text().splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[m.group(1)] = (int(m.group(2)), m.group(3))
    return rows


def _shipped() -> list[Path]:
    return sorted(MODELS.glob("*.tflite")) + sorted(MODELS.glob("*.json"))


def test_manifest_lists_exactly_the_shipped_files() -> None:
    assert sorted(_manifest()) == sorted(p.name for p in _shipped())
    assert any(p.suffix == ".tflite" for p in _shipped())


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: p.name)
def test_file_matches_manifest(path: Path) -> None:
    size, digest = _manifest()[path.name]
    data = path.read_bytes()
    assert len(data) == size, f"{path.name}: size changed; rerun models/build/manifest.py"
    assert hashlib.sha256(data).hexdigest() == digest, f"{path.name}: sha256 drifted"
    assert len(data) < LIMIT_BYTES


def test_models_folder_stays_small() -> None:
    total = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file())
    assert total < 12 * 1024 * 1024


DESCRIPTION_KEYS = {"schema", "color", "resize", "normalize", "mean", "std", "decoder"}
DECODER_KEYS = {"name", "threshold", "top_k", "iou_threshold", "labels", "options"}


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.tflite")), ids=lambda p: p.name)
def test_each_model_has_a_description(path: Path) -> None:
    desc = json.loads(path.with_suffix(".json").read_text())
    assert set(desc) == DESCRIPTION_KEYS and desc["schema"] == 1
    assert desc["color"] in {"rgb", "bgr", "gray"}
    assert desc["resize"] in {"stretch", "letterbox", "crop"}
    assert desc["normalize"] in {"raw", "unit", "symmetric", "meanstd"}
    assert set(desc["decoder"]) == DECODER_KEYS
    assert desc["decoder"]["name"] in {"classification", "ssd", "yolo", "blazeface", "raw"}
