"""Reading image files for ``infer`` (frames from cameras come from ``edge_agent.camera``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageError

MAX_IMAGE_BYTES = 64 * 1024 * 1024


def read_image(path: Path | str) -> np.ndarray:
    """A BGR uint8 image (OpenCV order); :class:`ImageError` naming the file otherwise."""
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{p}: is a folder, not an image file (give its images, e.g. {p}/*.jpg)")
    if not p.is_file():
        raise ImageError(f"{p}: image file not found")
    size = p.stat().st_size
    if size == 0:
        raise ImageError(f"{p}: image file is empty")
    if size > MAX_IMAGE_BYTES:
        raise ImageError(f"{p}: image is {size} bytes, more than {MAX_IMAGE_BYTES}")
    data = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{p}: cannot decode image (not a JPEG/PNG/BMP/... file?)")
    return img
