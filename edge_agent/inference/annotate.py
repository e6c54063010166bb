"""Draw inference results onto a frame and write it as a JPEG (snapshot ring, camera tools)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

GREEN = (0, 255, 0)
WHITE = (255, 255, 255)


def _palette(n: int) -> np.ndarray:
    """A fixed, well-spread BGR colour per class id (class 0, background: none)."""
    ids = np.arange(n, dtype=np.int64)
    hue = (ids * 47) % 180
    hsv = np.stack([hue, np.full(n, 200), np.full(n, 255)], axis=1).astype(np.uint8)
    colours: np.ndarray = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]
    return colours


def mask_for_frame(mask: Any) -> np.ndarray:
    """A segmentation's class map resized to the frame (nearest neighbour): ``(h, w)``."""
    x1, y1, x2, y2 = mask.box
    region = np.ascontiguousarray(mask.classes[y1:y2, x1:x2])
    w, h = mask.frame_size
    out: np.ndarray = cv2.resize(region, (w, h), interpolation=cv2.INTER_NEAREST)
    return out


def overlay(image: np.ndarray, mask: Any, alpha: float = 0.45) -> np.ndarray:
    """``image`` with each non-background class tinted in its colour (drawn in place)."""
    classes = mask_for_frame(mask)
    if classes.shape[:2] != image.shape[:2]:
        classes = cv2.resize(classes, (image.shape[1], image.shape[0]),
                             interpolation=cv2.INTER_NEAREST)
    colours = _palette(int(classes.max()) + 1)
    tint = colours[classes]
    blend = cv2.addWeighted(image, 1.0 - alpha, tint, alpha, 0.0)
    fg = classes > 0
    image[fg] = blend[fg]
    return image


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
    (boxes in ``color`` (BGR), class lines from text row ``first_row``); a segmentation is a
    colour overlay of its classes with their area fractions."""
    out = image.copy() if copy else image
    if result is None:
        return out
    mask = getattr(result, "mask", None)
    if mask is not None and out.ndim == 3:
        overlay(out, mask)
        colours = _palette(max((s.class_id for s in result.segments), default=0) + 1)
        for i, seg in enumerate(result.segments[:5]):
            colour = tuple(int(c) for c in colours[seg.class_id]) if seg.class_id else (255,) * 3
            cv2.putText(out, f"{seg.label} {100 * seg.fraction:.1f}%",
                        (8, 20 + 18 * (first_row + i)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
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
