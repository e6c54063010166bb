"""What the two reference scripts share: the test images, the folder of fetched models, and
writing a reference file under ``tests/data/reference/``. Standard library only (it runs in
MediaPipe's own virtualenv too); nothing of ``edge_agent`` is imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fetch import cache_dir

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")


def image_path(name: str) -> Path:
    return ROOT / "tests" / "data" / name


def models_folder() -> Path:
    """Where models/real/fetch.py put the models (``$EDGE_AGENT_REAL_MODELS`` or its cache)."""
    return cache_dir()


def write(name: str, out: dict[str, Any]) -> int:
    """Write ``tests/data/reference/<name>`` (sorted, one key a line) and print it; exit 0."""
    target = ROOT / "tests" / "data" / "reference" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(json.dumps(out, sort_keys=True))
    return 0
