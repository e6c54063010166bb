"""A deterministic synthetic camera: moving shapes and a frame counter.

Frame ``k`` depends on ``k`` and the size only, so a run over N frames gives the same pixels and
therefore the same inference results every time (tests, demos without a camera).
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def synthetic_frame(k: int, width: int = 640, height: int = 480) -> np.ndarray:
    """The BGR test pattern for frame number ``k``."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x[None, :] * 0.6 + 40).astype(np.uint8)
    img[..., 1] = (y[:, None] * 0.5 + 30).astype(np.uint8)
    img[..., 2] = 90
    s = min(width, height)
    # a disc moving on a circle, a bar sweeping left to right, a square bouncing vertically
    cx = int(width / 2 + 0.3 * width * math.cos(k * 0.05))
    cy = int(height / 2 + 0.3 * height * math.sin(k * 0.05))
    cv2.circle(img, (cx, cy), max(4, s // 8), (40, 200, 255), -1, cv2.LINE_AA)
    bx = int((k * 7) % (width + s // 4)) - s // 8
    cv2.rectangle(img, (bx, height // 8), (bx + s // 8, height // 8 + s // 4), (255, 255, 255), -1)
    period = max(2, height - s // 5)
    sy = abs((k * 5) % (2 * period) - period)
    sx = width - s // 4
    cv2.rectangle(img, (sx, sy), (sx + s // 5, sy + s // 5), (30, 30, 220), -1)
    scale = max(0.4, s / 480)
    cv2.putText(
        img, f"#{k:06d}", (8, height - 12), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3,
        cv2.LINE_AA,
    )
    cv2.putText(
        img, f"#{k:06d}", (8, height - 12), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
        cv2.LINE_AA,
    )
    return img
