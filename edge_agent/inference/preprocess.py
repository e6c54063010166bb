"""Frame (BGR uint8, as OpenCV gives it) -> model input, written straight into the input view.

Resize first (fewer pixels to convert), then colour order, then one table lookup per pixel
that does normalisation *and* quantisation at once: the table maps each 0..255 pixel value to
the exact value the input tensor needs (uint8, int8, float32 or float16).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ImageError, ModelIOError
from .description import ModelDescription, normalize_lut
from .tensors import Quantization, TensorSpec
from .transform import ResizePlan, Transform, plan_exact, plan_resize

SUPPORTED_DTYPES = ("uint8", "int8", "float32", "float16")


def image_geometry(spec: TensorSpec) -> tuple[int, int, int]:
    """(height, width, channels) of an image input ``[1, H, W, C]`` (or ``[1, H, W]``)."""
    shape = spec.shape
    if len(shape) == 3 and shape[0] == 1:
        shape = (*shape, 1)
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3) or min(shape[1:3]) < 1:
        raise ModelIOError(
            f"input {spec.name!r} has shape {list(spec.shape)}; an image input must be "
            "[1, height, width, 1 or 3] (NHWC)"
        )
    if spec.dtype.name not in SUPPORTED_DTYPES:
        raise ModelIOError(
            f"input {spec.name!r} is {spec.dtype.name}; image inputs must be one of "
            + ", ".join(SUPPORTED_DTYPES)
        )
    return shape[1], shape[2], shape[3]


def build_lut(spec: TensorSpec, description: ModelDescription, channels: int) -> np.ndarray:
    """Pixel value -> input tensor value, shape (256, channels), in the input's dtype."""
    real = normalize_lut(description, channels)
    q = spec.quantization
    if spec.dtype.kind in "iu" and description.normalize == "codes":
        shift = 128 if spec.dtype == np.int8 else 0  # int8 image inputs take pixel - 128
        codes = np.arange(256, dtype=np.int64)[:, None].repeat(channels, axis=1) - shift
        info = np.iinfo(spec.dtype)
        return np.clip(codes, info.min, info.max).astype(spec.dtype)
    if spec.dtype.kind in "iu":
        if not q.quantized:  # integer input without quantisation: feed the pixel values
            real = np.arange(256, dtype=np.float64)[:, None].repeat(channels, axis=1)
            info = np.iinfo(spec.dtype)
            return np.clip(real, info.min, info.max).astype(spec.dtype)
        if q.scales.size > 1 and q.axis != 3:
            raise ModelIOError(
                f"input {spec.name!r} is quantised per channel along axis {q.axis}; only the "
                "channel axis (3) is supported for image inputs"
            )
        quant = q
        if q.scales.size > 1:  # per-channel along the colour axis -> the table's axis 1
            quant = Quantization.per_channel(q.scales, q.zero_points, axis=1)
        return quant.quantize(real, spec.dtype)
    return real.astype(spec.dtype)


class Preprocessor:
    """Resizes, converts and quantises frames into one model input."""

    def __init__(self, spec: TensorSpec, description: ModelDescription) -> None:
        self.spec = spec
        self.description = description
        self.height, self.width, self.channels = image_geometry(spec)
        self.lut = build_lut(spec, description, self.channels)
        self._uniform = bool(np.all(self.lut == self.lut[:, :1]))
        self._lut1 = np.ascontiguousarray(self.lut[:, 0])
        self._identity = (
            self._uniform
            and self.lut.dtype == np.uint8
            and bool(np.array_equal(self._lut1, np.arange(256, dtype=np.uint8)))
        )
        self._flat = np.ascontiguousarray(self.lut).reshape(-1)
        self._chan = np.arange(self.channels, dtype=np.intp)
        self._canvas = np.zeros((self.height, self.width, self.channels), np.uint8)
        self._cache: tuple[tuple[int, int], ResizePlan, Transform] | None = None
        self._exact: tuple[tuple[int, int], Transform] | None = None

    def _plan(self, frame_w: int, frame_h: int) -> tuple[ResizePlan, Transform]:
        key = (frame_w, frame_h)
        if self._cache is None or self._cache[0] != key:
            plan, transform = plan_resize(
                self.description.resize, frame_w, frame_h, self.width, self.height
            )
            self._cache = (key, plan, transform)
        return self._cache[1], self._cache[2]

    def _resize(self, src: np.ndarray, w: int, h: int) -> np.ndarray:
        return cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)

    def _run_corner(self, frame: np.ndarray, target: np.ndarray) -> Transform:
        """``sampling: corner``: one ``cv2.warpAffine`` of the whole frame onto the input,
        corners onto corners, as MediaPipe's ImageToTensorCalculator does (``cv2.resize``
        maps pixel centres instead: half a source pixel apart); letterbox padding is 0."""
        frame_h, frame_w = frame.shape[:2]
        key = (frame_w, frame_h)
        if self._exact is None or self._exact[0] != key:
            t = plan_exact(self.description.resize, frame_w, frame_h, self.width, self.height)
            self._exact = (key, t)
        t = self._exact[1]
        m = np.array([[t.sx, 0.0, t.ox], [0.0, t.sy, t.oy]])
        border = cv2.BORDER_CONSTANT if self.description.resize == "letterbox" else (
            cv2.BORDER_REPLICATE
        )
        warped = cv2.warpAffine(
            frame, m, (self.width, self.height), flags=cv2.INTER_LINEAR, borderMode=border,
            borderValue=0,
        )
        self._write(self._color(warped), target)
        return t

    def _color(self, img: np.ndarray) -> np.ndarray:
        """BGR/gray image -> the model's colour order, shape (h, w, channels)."""
        if img.ndim == 2:
            img = img[:, :, None]
        have = img.shape[2]
        if self.channels == 1:
            if have == 3:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
            elif have == 4:
                img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)[:, :, None]
            return img
        if have == 1:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif have == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if self.description.color == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return img

    def run(self, frame_bgr: np.ndarray, out: np.ndarray) -> Transform:
        """Write the model input for ``frame_bgr`` into ``out`` (the input view, shape
        ``[1, H, W, C]``); return how to map boxes back to the frame."""
        if frame_bgr.ndim not in (2, 3) or frame_bgr.size == 0 or frame_bgr.dtype != np.uint8:
            raise ImageError(
                f"frame must be a non-empty uint8 image (H, W[, C]); got {frame_bgr.dtype} "
                f"{list(frame_bgr.shape)}"
            )
        target = out.reshape(self.height, self.width, self.channels)
        if self.description.sampling == "corner":
            return self._run_corner(frame_bgr, target)
        frame_h, frame_w = frame_bgr.shape[:2]
        plan, transform = self._plan(frame_w, frame_h)
        src = frame_bgr[plan.src_y : plan.src_y + plan.src_h, plan.src_x : plan.src_x + plan.src_w]
        if (plan.dst_w, plan.dst_h) != (plan.src_w, plan.src_h):
            src = self._resize(src, plan.dst_w, plan.dst_h)
        img = self._color(src)
        canvas = self._canvas
        if (plan.dst_w, plan.dst_h) != (self.width, self.height):
            canvas.fill(0)
        canvas[plan.off_y : plan.off_y + plan.dst_h, plan.off_x : plan.off_x + plan.dst_w] = img
        self._write(canvas, target)
        return transform

    def _write(self, canvas: np.ndarray, target: np.ndarray) -> None:
        """One table lookup per pixel: normalise and quantise into the input view."""
        if self._identity:
            np.copyto(target, canvas)
        elif self._uniform:
            np.take(self._lut1, canvas, out=target)
        else:
            idx = canvas.astype(np.intp) * self.channels + self._chan
            np.take(self._flat, idx, out=target)
