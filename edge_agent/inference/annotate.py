"""Draw inference results onto a frame and write it as a JPEG (snapshot ring, camera tools)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

GREEN = (0, 255, 0)
WHITE = (255, 255, 255)


def annotate(
    image: np.ndarray,
    result: Any,
    *,
    color: tuple[int, int, int] = GREEN,
    text_color: tuple[int, int, int] = WHITE,
    first_row: int = 0,
    copy: bool = True,
) -> np.ndarray:
    """``image`` (a copy unless ``copy=False``) with the result's boxes and top classes drawn
    (boxes in ``color`` (BGR), class lines from text row ``first_row``)."""
    out = image.copy() if copy else image
    if result is None:
        return out
    for det in getattr(result, "detections", []) or []:
        x1, y1, x2, y2 = (round(float(v)) for v in det.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        text = f"{det.label or det.class_id} {det.score:.2f}"
        cv2.putText(out, text, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    color, 1, cv2.LINE_AA)
    for i, cls in enumerate((getattr(result, "classes", []) or [])[:3]):
        text = f"{cls.label or cls.class_id} {cls.score:.2f}"
        cv2.putText(out, text, (8, 20 + 18 * (first_row + i)), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    text_color, 1, cv2.LINE_AA)
    return out


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(data.tobytes())
