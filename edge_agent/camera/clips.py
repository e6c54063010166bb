"""Write short video clips (demo clip, benchmark input, tests) with OpenCV."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError
from .synthetic import synthetic_frame


def write_clip(
    path: Path, frames: Iterable[np.ndarray], *, fps: float = 30.0, fourcc: str = "MJPG"
) -> int:
    """Encode BGR frames (all the size of the first) into ``path``; returns the frame count.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer: cv2.VideoWriter | None = None
    n = 0
    try:
        for img in frames:
            if writer is None:
                h, w = img.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*fourcc), fps, (w, h))
                if not writer.isOpened():
                    raise SourceError(f"{path}: OpenCV cannot write {fourcc} video here")
            writer.write(img)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    if n == 0:
        raise SourceError(f"{path}: no frames to write")
    os.replace(tmp, path)
    return n


def synthetic_frames(n: int, width: int = 640, height: int = 480) -> Iterator[np.ndarray]:
    for k in range(n):
        yield synthetic_frame(k, width, height)


def pan_zoom_frames(
    image: np.ndarray, n: int, width: int = 640, height: int = 480
) -> Iterator[np.ndarray]:
    """A slow pan and zoom over ``image``: crop windows (zoom 1.3 -> 1.7 -> 1.3, panning left
    to right) resized to ``width`` x ``height``."""
    ih, iw = image.shape[:2]
    aspect = width / height
    for k in range(n):
        t = k / max(n - 1, 1)
        zoom = 1.3 + 0.8 * (0.5 - abs(t - 0.5))
        cw = min(iw, int(iw / zoom))
        ch = min(ih, int(cw / aspect))
        cw = min(cw, int(ch * aspect))
        x0 = int((iw - cw) * (0.1 + 0.5 * t))
        y0 = int((ih - ch) * 0.25)
        crop = image[y0 : y0 + ch, x0 : x0 + cw]
        yield cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
