"""``yolo``: one output in the YOLOv5 ``[1, N, 5 + C]`` or YOLOv8 ``[1, 4 + C, N]`` layout.

Rows are ``cx, cy, w, h`` (model pixels, or relative to the input when every coordinate is
<= 2), then for v5 an objectness and C class scores (score = objectness * class), for v8 the
C class scores. Then score threshold and per-class NMS.
Options: ``layout`` (``auto`` | ``v5`` | ``v8``), ``normalized`` (``auto`` | true | false),
``agnostic`` (NMS across classes), ``label_offset``.
"""

from __future__ import annotations

import numpy as np

from ..nms import batched_nms, nms
from ..result import Result
from ..transform import Transform
from .base import Decoder, detections_from_boxes, register_decoder


@register_decoder("yolo")
class YoloDecoder(Decoder):
    def check(self) -> None:
        if len(self.outputs) != 1 or len(self.outputs[0].shape) != 3:
            raise self.fail("expects one output [1, N, 5+C] (v5) or [1, 4+C, N] (v8)")
        _, a, b = self.outputs[0].shape
        layout = self.option("layout", "auto")
        if layout == "auto":
            layout = "v8" if 5 <= a < b else "v5"
        if layout not in ("v5", "v8"):
            raise self.fail(f"options.layout must be auto, v5 or v8, not {layout!r}")
        self.layout = layout
        width = a if layout == "v8" else b
        if width < (5 if layout == "v8" else 6):
            raise self.fail(f"a {layout} row needs box + classes, got {width} values")

    def decode(self, outputs: list[np.ndarray], transform: Transform) -> Result:
        out = self.real(outputs, 0)[0].astype(np.float64)
        rows = out.T if self.layout == "v8" else out
        if self.layout == "v5":
            cls_scores = rows[:, 5:] * rows[:, 4:5]
        else:
            cls_scores = rows[:, 4:]
        class_ids = np.argmax(cls_scores, axis=1)
        scores = cls_scores[np.arange(rows.shape[0]), class_ids]
        keep = np.nonzero(scores >= self.spec.threshold)[0]
        rows, scores, class_ids = rows[keep], scores[keep], class_ids[keep]
        normalized = self.option("normalized", "auto")
        if normalized == "auto":
            normalized = bool(rows.size == 0 or np.abs(rows[:, :4]).max() <= 2.0)
        cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        if normalized:
            boxes = boxes * np.array([self.input_w, self.input_h, self.input_w, self.input_h])
        if self.option("agnostic", False):
            idx = nms(boxes, scores, self.spec.iou_threshold, self.spec.top_k)
        else:
            idx = batched_nms(boxes, scores, class_ids, self.spec.iou_threshold, self.spec.top_k)
        return detections_from_boxes(
            self,
            boxes[idx],
            scores[idx],
            class_ids[idx],
            transform,
            label_offset=int(self.option("label_offset", 0)),
        )
