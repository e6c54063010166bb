"""MediaPipe SSD anchors and the published anchor layouts (pure: numpy only).

MediaPipe's detectors (BlazeFace short/full range and the 256x256 "back" model, BlazePose's
person detector, the palm detector) emit one box per anchor; the anchors are not in the file
but in the graph config of each model (``SsdAnchorsCalculatorOptions``). The layouts below
are those configs; :func:`match_layout` picks the one that gives the model's input size and
output count, so a published model needs no ``strides`` option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorLayout:
    """One published ``SsdAnchorsCalculatorOptions`` (fixed anchor size, offset 0.5)."""

    family: str
    input_size: int  # square input the config is for
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 = aspect ratio 1 plus the interpolated one, 1 = without
    label: str

    def count(self, input_w: int, input_h: int) -> int:
        return ssd_anchors(input_w, input_h, self.strides, self.anchors_per_layer).shape[0]


LAYOUTS = (
    AnchorLayout("mediapipe face detection, short range", 128, (8, 16, 16, 16), 2, "face"),
    AnchorLayout("mediapipe face detection, full range", 192, (4,), 1, "face"),
    AnchorLayout("mediapipe face detection, back camera", 256, (16, 32, 32, 32), 2, "face"),
    AnchorLayout("mediapipe pose detection (BlazePose)", 224, (8, 16, 32, 32, 32), 2, "person"),
    AnchorLayout("mediapipe palm detection", 192, (8, 16, 16, 16), 2, "palm"),
)


def match_layout(input_w: int, input_h: int, count: int) -> AnchorLayout | None:
    """The published layout for this input size and number of boxes (same size first)."""
    fits = [lay for lay in LAYOUTS if lay.count(input_w, input_h) == count]
    same = [lay for lay in fits if lay.input_size == input_w == input_h]
    found = same or fits
    return found[0] if found else None


def ssd_anchors(
    input_w: int,
    input_h: int,
    strides: tuple[int, ...] = (8, 16, 16, 16),
    anchors_per_layer: int = 2,
    offset: float = 0.5,
) -> np.ndarray:
    """Anchor centres ``(N, 2)`` as (x, y) in [0, 1], in MediaPipe's order (layers with the
    same stride share a grid; per location, all of their anchors in a row)."""
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        last = layer
        while last < len(strides) and strides[last] == stride:
            last += 1
        per_location = anchors_per_layer * (last - layer)
        fh = math.ceil(input_h / stride)
        fw = math.ceil(input_w / stride)
        ys, xs = np.meshgrid(
            (np.arange(fh) + offset) / fh, (np.arange(fw) + offset) / fw, indexing="ij"
        )
        grid = np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1)
        centres.append(np.repeat(grid, per_location, axis=0))
        layer = last
    if not centres:
        return np.zeros((0, 2), np.float64)
    return np.concatenate(centres, axis=0)
