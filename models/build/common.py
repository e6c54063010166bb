"""Helpers shared by the model build scripts (run with the `models` extra, never in CI)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = MODELS_DIR.parent
TEST_DATA_DIR = REPO_ROOT / "tests" / "data"

# scikit-image sample photos bundled in the wheel (no download needed).
COLOR_SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "retina",
                 "hubble_deep_field", "immunohistochemistry", "colorwheel")
GRAY_SAMPLES = ("camera", "coins", "moon", "page", "text", "horse", "grass", "gravel", "brick")


def write_atomic(path: Path, data: bytes) -> None:
    """temp -> fsync -> rename -> fsync(dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json(path: Path, obj: object) -> None:
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sample_photos() -> Iterator[tuple[str, np.ndarray]]:
    """All bundled scikit-image photos as HxWx3 uint8 RGB."""
    import skimage.data

    for name in COLOR_SAMPLES + GRAY_SAMPLES:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype != np.uint8:
            img = (np.clip(img.astype(np.float64) / max(float(img.max()), 1e-9), 0, 1)
                   * 255).astype(np.uint8)
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        yield name, img[..., :3]


def letterbox(img: np.ndarray, size: int, interpolation: int | None = None) -> np.ndarray:
    """Fit HxWx3 uint8 into size x size, keep aspect ratio, pad with black (centred).

    Default interpolation: INTER_AREA when shrinking (calibration). edge-agent's runtime uses
    INTER_LINEAR with the same centring; pass cv2.INTER_LINEAR to reproduce it exactly.
    """
    import cv2

    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if interpolation is None:
        interpolation = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img, (nw, nh), interpolation=interpolation)
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out

