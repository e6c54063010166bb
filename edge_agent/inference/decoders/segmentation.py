"""``segmentation``: a per-pixel class map -> the share of the frame each class covers.

Outputs: ``[1, H, W, C]`` class scores (logits or probabilities; the class of a pixel is the
arg-max), ``[1, H, W, 1]`` a foreground probability (class 1 where it is >= ``options.
foreground`` (0.5), else 0 = background), or ``[1, H, W]`` class ids. Fractions are counted
over the part of the map that shows the frame (the letterbox padding and a crop's cut-off
part are left out), so they are shares of the frame's area. ``threshold`` is the smallest
fraction listed, ``top_k`` the most classes listed (largest first). The class map travels
with the result (``Result.mask``) for the annotated snapshot's colour overlay; the JSON holds
only the fractions and the map's shape.

Labels: one per class (DeepLab: 21, ``background`` first); for a one-channel map the label is
the foreground's, and class 0 is ``background``.
"""

from __future__ import annotations

import math

import numpy as np

from ..result import Result, Segment, SegmentationMask
from ..transform import Transform
from .base import Decoder, register_decoder


@register_decoder("segmentation")
class SegmentationDecoder(Decoder):
    def check(self) -> None:
        if len(self.outputs) != 1:
            raise self.fail(f"expects 1 output (the class map), got {len(self.outputs)}")
        shape = self.outputs[0].shape
        if len(shape) == 4 and shape[0] == 1 and min(shape[1:3]) >= 1:
            self.channels = int(shape[3])
        elif len(shape) == 3 and shape[0] == 1 and min(shape[1:3]) >= 1:
            self.channels = 0  # class ids
        else:
            raise self.fail("expects [1, H, W, C] class scores or a [1, H, W] class map")
        self.map_h, self.map_w = int(shape[1]), int(shape[2])
        if self.channels == 1:
            fg = self.labels[0] if self.labels else "foreground"
            self.labels = ["background", fg]
        elif self.channels > 1:
            self.align_labels(self.channels)
        self.foreground = float(self.option("foreground", 0.5))

    def class_map(self, outputs: list[np.ndarray]) -> np.ndarray:
        out = outputs[0]
        if self.channels == 0:
            return np.asarray(out).reshape(self.map_h, self.map_w).astype(np.int64)
        spec = self.outputs[0]
        if self.channels == 1:
            prob = self.real(outputs, 0).reshape(self.map_h, self.map_w)
            if prob.min() < 0 or prob.max() > 1:  # logits
                prob = 1.0 / (1.0 + np.exp(-np.clip(prob, -60, 60)))
            return (prob >= self.foreground).astype(np.int64)
        scores = np.asarray(out).reshape(self.map_h, self.map_w, self.channels)
        q = spec.quantization
        if q.quantized and q.scales.size > 1:  # per-channel: compare real values
            scores = self.real(outputs, 0).reshape(self.map_h, self.map_w, self.channels)
        return np.argmax(scores, axis=2)  # per-tensor quantisation keeps the order

    def _frame_box(self, transform: Transform) -> tuple[int, int, int, int]:
        """The frame's rectangle in map pixels (the map may be smaller than the input)."""
        fw, fh = transform.frame_w, transform.frame_h
        x1, y1, x2, y2 = transform.to_model(np.array([[0.0, 0.0, fw, fh]]))[0]
        kx, ky = self.map_w / max(self.input_w, 1), self.map_h / max(self.input_h, 1)
        box = (
            max(0, math.floor(x1 * kx + 1e-6)),
            max(0, math.floor(y1 * ky + 1e-6)),
            min(self.map_w, math.ceil(x2 * kx - 1e-6)),
            min(self.map_h, math.ceil(y2 * ky - 1e-6)),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            return (0, 0, self.map_w, self.map_h)
        return box

    def decode(self, outputs: list[np.ndarray], transform: Transform) -> Result:
        classes = self.class_map(outputs)
        x1, y1, x2, y2 = box = self._frame_box(transform)
        region = classes[y1:y2, x1:x2]
        ids, counts = np.unique(region, return_counts=True)
        total = float(region.size)
        order = np.argsort(-counts, kind="stable")
        segments = [
            Segment(self.label(int(ids[i])), int(ids[i]), float(counts[i] / total))
            for i in order
            if counts[i] / total >= self.spec.threshold
        ][: self.spec.top_k]
        mask = SegmentationMask(
            classes=classes.astype(np.uint16),
            box=box,
            frame_size=(int(transform.frame_w), int(transform.frame_h)),
            labels=tuple(self.labels),
        )
        return Result(kind="segmentation", segments=segments, mask=mask)
