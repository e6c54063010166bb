"""``blazeface``: MediaPipe anchor detectors (SSD anchors, sigmoid scores).

Outputs: regressors ``[1, N, 4 + 2K]`` (box centre/size and K keypoints, relative to the
anchor, in units of ``scale`` pixels) and classificators ``[1, N, 1]`` (logits). The anchors
are MediaPipe's SSD anchors, all of size 1 (fixed). Their layout is taken from the model: the
published one (:data:`..anchors.LAYOUTS`: face short range 128x128 / 896, full range 192x192 /
2304, back camera 256x256 / 896, BlazePose person detector 224x224 / 2254, palm 192x192 / 2016)
whose input size and box count match; ``options.strides`` sets another.

Options: ``strides``, ``anchors_per_layer`` (2), ``anchor_offset`` (0.5), ``scale`` (default:
the input width), ``nms`` (``weighted`` as MediaPipe does, or ``plain``).
"""

from __future__ import annotations

import numpy as np

from ..anchors import LAYOUTS, match_layout, ssd_anchors
from ..nms import nms, weighted_nms
from ..result import Result
from ..transform import Transform
from .base import Decoder, detections_from_boxes, register_decoder

SHORT_RANGE_STRIDES = (8, 16, 16, 16)

__all__ = ["SHORT_RANGE_STRIDES", "BlazeFaceDecoder", "ssd_anchors"]


@register_decoder("blazeface")
class BlazeFaceDecoder(Decoder):
    def check(self) -> None:
        if len(self.outputs) != 2:
            raise self.fail(
                f"expects 2 outputs (regressors, classificators), got {len(self.outputs)}"
            )
        last = [t.shape[-1] for t in self.outputs]
        if sorted(last)[0] != 1 or max(last) < 4:
            raise self.fail("expects outputs [1, N, 4+2K] and [1, N, 1]")
        self.reg_i = 0 if last[0] >= 4 else 1
        self.cls_i = 1 - self.reg_i
        n = int(np.prod(self.outputs[self.cls_i].shape))
        self.layout = None
        if "strides" in self.spec.options:
            strides = tuple(int(s) for s in self.option("strides", SHORT_RANGE_STRIDES))
            per_layer = int(self.option("anchors_per_layer", 2))
        else:
            self.layout = match_layout(self.input_w, self.input_h, n)
            if self.layout is None:
                tried = "; ".join(
                    f"{lay.family}: {lay.count(self.input_w, self.input_h)}" for lay in LAYOUTS
                )
                raise self.fail(
                    f"no published anchor layout gives {n} boxes for input "
                    f"{self.input_w}x{self.input_h} ({tried}); set options.strides"
                )
            strides, per_layer = self.layout.strides, self.layout.anchors_per_layer
            if not self.labels:
                self.labels = [self.layout.label]
        self.anchors = ssd_anchors(
            self.input_w,
            self.input_h,
            strides,
            int(self.option("anchors_per_layer", per_layer)),
            float(self.option("anchor_offset", 0.5)),
        )
        if self.anchors.shape[0] != n:
            raise self.fail(
                f"{self.anchors.shape[0]} anchors for input {self.input_w}x{self.input_h} and "
                f"strides {list(strides)}, but {n} scores (set options.strides)"
            )
        self.scale_x = float(self.option("scale", self.input_w))
        self.scale_y = float(self.option("scale", self.input_h))

    def output_ranges(self) -> dict[int, tuple[float, float]]:
        """Logits beyond +-16 are sigmoid 1e-7 from 0 or 1; box offsets, sizes and keypoints
        of a face inside the input lie within [-scale/2, scale]. Calibrated ranges are far
        wider (anchors on black letterbox padding give logits down to -16000), which left one
        int8 step of 63 logits and the int8 model found nothing."""
        scale = max(self.scale_x, self.scale_y)
        return {self.cls_i: (-16.0, 16.0), self.reg_i: (-scale / 2.0, scale)}

    def decode(self, outputs: list[np.ndarray], transform: Transform) -> Result:
        logits = self.real(outputs, self.cls_i).reshape(-1).astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = np.nonzero(scores >= self.spec.threshold)[0]
        if keep.size == 0:
            return Result(kind="detection")
        reg = self.real(outputs, self.reg_i).reshape(scores.size, -1)[keep].astype(np.float64)
        anchors = self.anchors[keep]
        cx = reg[:, 0] / self.scale_x + anchors[:, 0]
        cy = reg[:, 1] / self.scale_y + anchors[:, 1]
        w = reg[:, 2] / self.scale_x
        h = reg[:, 3] / self.scale_y
        size = np.array([self.input_w, self.input_h, self.input_w, self.input_h], np.float64)
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * size
        nk = (reg.shape[1] - 4) // 2
        kps = reg[:, 4 : 4 + 2 * nk].reshape(-1, nk, 2)
        kps = (kps / np.array([self.scale_x, self.scale_y]) + anchors[:, None, :]) * np.array(
            [self.input_w, self.input_h]
        )
        s = scores[keep]
        if self.option("nms", "weighted") == "plain":
            idx = nms(boxes, s, self.spec.iou_threshold, self.spec.top_k)
            boxes, s, kps = boxes[idx], s[idx], kps[idx]
        else:
            boxes, s, members = weighted_nms(boxes, s, self.spec.iou_threshold, self.spec.top_k)
            kept_scores = scores[keep]
            merged = []
            for m in members:  # keypoints averaged with the same weights as the boxes
                w = kept_scores[m][:, None, None]
                merged.append((kps[m] * w).sum(0) / w.sum())
            kps = np.stack(merged) if merged else kps[:0]
        return detections_from_boxes(
            self, boxes, s, np.zeros(len(s), np.int64), transform, keypoints_model=kps
        )
