"""``ssd``: the four outputs of ``TFLite_Detection_PostProcess`` (boxes, classes, scores, count).

Boxes are ``[ymin, xmin, ymax, xmax]`` relative to the model input. Outputs are told apart by
the metadata's names (option ``outputs``: ``{"boxes": i, "classes": j, "scores": k, "count":
l}``, set from the metadata when a model has it), else by shape (boxes ``[1, N, 4]``, count
``[1]``) and, for classes vs scores, by name when the names say so, else in the
post-processing op's order (classes before scores).
Options: ``outputs``; ``box_index`` (where left, top, right, bottom sit in a box, default
``[1, 0, 3, 2]``, from the metadata's BoundingBoxProperties); ``label_offset`` (added to the
class id before the label lookup). Class 0 is the first real class: a labels file that starts
with a background row (``???``, ``background``) has it dropped.
"""

from __future__ import annotations

import numpy as np

from ..result import Result
from ..transform import Transform
from .base import Decoder, detections_from_boxes, register_decoder


@register_decoder("ssd")
class SSDDecoder(Decoder):
    def check(self) -> None:
        if len(self.outputs) != 4:
            raise self.fail(
                f"expects 4 outputs (boxes, classes, scores, count), got {len(self.outputs)}"
            )
        shapes = [t.shape for t in self.outputs]
        boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 4]
        counts = [i for i, s in enumerate(shapes) if int(np.prod(s)) == 1]
        if len(boxes) != 1 or len(counts) != 1:
            raise self.fail("expects one [1, N, 4] boxes output and one [1] count output")
        self.boxes_i, self.count_i = boxes[0], counts[0]
        rest = [i for i in range(4) if i not in (self.boxes_i, self.count_i)]
        names = [self.outputs[i].name.lower() for i in rest]
        if "score" in names[0] or "class" in names[1]:
            rest.reverse()
        self.classes_i, self.scores_i = rest
        roles = self.option("outputs", None)
        if roles:
            try:
                self.boxes_i, self.classes_i, self.scores_i, self.count_i = (
                    int(roles[k]) for k in ("boxes", "classes", "scores", "count")
                )
            except (KeyError, TypeError, ValueError):
                raise self.fail(
                    'options.outputs must map "boxes", "classes", "scores", "count" to output '
                    "indexes"
                ) from None
            if sorted((self.boxes_i, self.classes_i, self.scores_i, self.count_i)) != [0, 1, 2, 3]:
                raise self.fail("options.outputs must name each of the 4 outputs once")
        index = [int(i) for i in self.option("box_index", [1, 0, 3, 2])]
        if sorted(index) != [0, 1, 2, 3]:
            raise self.fail("options.box_index must be a permutation of 0, 1, 2, 3")
        self.box_index = index
        self.align_labels(None)

    def decode(self, outputs: list[np.ndarray], transform: Transform) -> Result:
        boxes = self.real(outputs, self.boxes_i).reshape(-1, 4)
        classes = self.real(outputs, self.classes_i).reshape(-1)
        scores = self.real(outputs, self.scores_i).reshape(-1)
        n = min(int(self.real(outputs, self.count_i).reshape(-1)[0]), boxes.shape[0])
        keep = [i for i in range(n) if scores[i] >= self.spec.threshold][: self.spec.top_k]
        idx = np.asarray(keep, np.intp)
        b = boxes[idx].astype(np.float64)
        left, top, right, bottom = self.box_index
        xyxy = np.stack(
            [
                b[:, left] * self.input_w,
                b[:, top] * self.input_h,
                b[:, right] * self.input_w,
                b[:, bottom] * self.input_h,
            ],
            axis=1,
        )
        return detections_from_boxes(
            self,
            xyxy,
            scores[idx],
            np.rint(classes[idx]).astype(np.int64),
            transform,
            label_offset=int(self.option("label_offset", 0)),
        )
