"""``classification``: top-k class scores from one ``[1, C]`` output."""

from __future__ import annotations

import numpy as np

from ..description import is_segmentation_shape
from ..result import ClassScore, Result
from ..transform import Transform
from .base import Decoder, register_decoder


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    out: np.ndarray = e / e.sum()
    return out


@register_decoder("classification")
class ClassificationDecoder(Decoder):
    """Options: ``activation`` (``auto`` | ``softmax`` | ``sigmoid`` | ``none``; auto applies
    softmax when the outputs are not already probabilities), ``label_offset`` (added to the
    class index before looking up the label, e.g. -1 for a background class at 0).

    The output must be one vector of class scores (``[1, C]``, or ``[C]`` / ``[1, 1, 1, C]``);
    a per-pixel map is refused (that is the ``segmentation`` decoder's)."""

    def check(self) -> None:
        if len(self.outputs) != 1:
            raise self.fail(f"expects 1 output, the model has {len(self.outputs)}")
        shape = self.outputs[0].shape
        if int(np.prod(shape)) < 1:
            raise self.fail("the output is empty")
        if len([d for d in shape if d != 1]) > 1:
            hint = (
                "it looks like a per-pixel segmentation map (use --decoder segmentation)"
                if is_segmentation_shape(shape)
                else "expects one vector of class scores [1, C]"
            )
            raise self.fail(hint)
        self.align_labels(int(np.prod(shape)))

    def decode(self, outputs: list[np.ndarray], transform: Transform) -> Result:
        scores = self.real(outputs, 0).reshape(-1).astype(np.float64)
        activation = self.option("activation", "auto")
        if activation == "softmax" or (
            activation == "auto" and (scores.min() < 0 or scores.max() > 1)
        ):
            scores = softmax(scores)
        elif activation == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
        offset = int(self.option("label_offset", 0))
        k = min(self.spec.top_k, scores.size)
        top = np.argsort(-scores, kind="stable")[:k]
        classes = [
            ClassScore(self.label(int(i) + offset), float(scores[i]), int(i) + offset)
            for i in top
            if scores[i] >= self.spec.threshold
        ]
        return Result(kind="classification", classes=classes)
