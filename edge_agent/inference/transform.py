"""Coordinate maths between an original frame and the model input (pure, no OpenCV).

Every resize mode is an axis-aligned affine map ``model = frame * (sx, sy) + (ox, oy)``
in continuous pixel-edge coordinates (pixel ``i`` covers ``[i, i+1)``), which is exactly how
OpenCV's resize samples, so boxes map back without drift:

- ``stretch``: the whole frame is resized to the model size (aspect ratio not kept);
- ``letterbox``: the whole frame is scaled to fit, centred, the rest padded;
- ``crop``: a centred window of the frame with the model's aspect ratio is scaled to fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

ResizeMode = Literal["stretch", "letterbox", "crop"]


@dataclass(frozen=True)
class ResizePlan:
    """What the preprocessor does: take ``src`` window of the frame, resize it to ``size`` and
    put it at ``offset`` inside the model input."""

    src_x: int
    src_y: int
    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    off_x: int
    off_y: int


@dataclass(frozen=True)
class Transform:
    """Maps boxes between model-input pixels and original-frame pixels."""

    frame_w: int
    frame_h: int
    model_w: int
    model_h: int
    sx: float
    sy: float
    ox: float
    oy: float

    def to_model(self, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Frame-pixel ``[x1, y1, x2, y2]`` boxes (N, 4) -> model-input pixels."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        scale = np.array([self.sx, self.sy, self.sx, self.sy])
        offset = np.array([self.ox, self.oy, self.ox, self.oy])
        return b * scale + offset

    def to_frame(self, boxes: npt.ArrayLike, *, clip: bool = True) -> npt.NDArray[np.float64]:
        """Model-input-pixel ``[x1, y1, x2, y2]`` boxes (N, 4) -> original frame pixels,
        clipped to the frame unless ``clip=False``."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        scale = np.array([self.sx, self.sy, self.sx, self.sy])
        offset = np.array([self.ox, self.oy, self.ox, self.oy])
        out = (b - offset) / scale
        if clip:
            np.clip(out[:, 0::2], 0.0, float(self.frame_w), out=out[:, 0::2])
            np.clip(out[:, 1::2], 0.0, float(self.frame_h), out=out[:, 1::2])
        return out

    def points_to_frame(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Model-input-pixel ``(x, y)`` points (..., 2) -> frame pixels (not clipped)."""
        p = np.asarray(points, np.float64)
        return (p - np.array([self.ox, self.oy])) / np.array([self.sx, self.sy])


def plan_resize(
    mode: ResizeMode, frame_w: int, frame_h: int, model_w: int, model_h: int
) -> tuple[ResizePlan, Transform]:
    """The resize to perform and the exact transform it implies."""
    if min(frame_w, frame_h, model_w, model_h) < 1:
        raise ValueError(
            f"sizes must be >= 1: frame {frame_w}x{frame_h}, model {model_w}x{model_h}"
        )
    if mode == "stretch":
        plan = ResizePlan(0, 0, frame_w, frame_h, model_w, model_h, 0, 0)
    elif mode == "letterbox":
        s = min(model_w / frame_w, model_h / frame_h)
        dst_w = min(model_w, max(1, round(frame_w * s)))
        dst_h = min(model_h, max(1, round(frame_h * s)))
        plan = ResizePlan(
            0, 0, frame_w, frame_h, dst_w, dst_h, (model_w - dst_w) // 2, (model_h - dst_h) // 2
        )
    elif mode == "crop":
        s = max(model_w / frame_w, model_h / frame_h)
        src_w = min(frame_w, max(1, round(model_w / s)))
        src_h = min(frame_h, max(1, round(model_h / s)))
        plan = ResizePlan(
            (frame_w - src_w) // 2, (frame_h - src_h) // 2, src_w, src_h, model_w, model_h, 0, 0
        )
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    sx = plan.dst_w / plan.src_w
    sy = plan.dst_h / plan.src_h
    transform = Transform(
        frame_w=frame_w,
        frame_h=frame_h,
        model_w=model_w,
        model_h=model_h,
        sx=sx,
        sy=sy,
        ox=plan.off_x - plan.src_x * sx,
        oy=plan.off_y - plan.src_y * sy,
    )
    return plan, transform


def plan_exact(
    mode: ResizeMode, frame_w: int, frame_h: int, model_w: int, model_h: int
) -> Transform:
    """The transform of MediaPipe's image-to-tensor step: the frame is mapped with one affine
    ``model = frame * s + offset`` (corners onto corners, offsets not rounded), for
    ``letterbox`` and ``crop`` with one scale for both axes and the frame centred."""
    if min(frame_w, frame_h, model_w, model_h) < 1:
        raise ValueError(
            f"sizes must be >= 1: frame {frame_w}x{frame_h}, model {model_w}x{model_h}"
        )
    if mode == "stretch":
        sx, sy = model_w / frame_w, model_h / frame_h
    elif mode in ("letterbox", "crop"):
        pick = min if mode == "letterbox" else max
        sx = sy = pick(model_w / frame_w, model_h / frame_h)
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    return Transform(
        frame_w=frame_w,
        frame_h=frame_h,
        model_w=model_w,
        model_h=model_h,
        sx=sx,
        sy=sy,
        ox=(model_w - frame_w * sx) / 2,
        oy=(model_h - frame_h * sy) / 2,
    )
