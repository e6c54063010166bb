#!/usr/bin/env python3
"""Reference results for the real models MediaPipe's own API does not run here, written from
the models' documentation and apart from edge-agent's code (nothing of ``edge_agent`` is
imported): the interpreter, numpy and OpenCV only.

- SSD MobileNet v2 COCO (Coral, ``TFLite_Detection_PostProcess``): uint8 RGB 300x300, the
  whole image stretched, pixel codes as they are; outputs boxes ``[ymin, xmin, ymax, xmax]``
  (fractions), class ids into ``coco_labels.txt`` (``ID  name``), scores, count; kept >= 0.5.
- MediaPipe face detection full range / back camera and the BlazePose person detector: the
  graph configs of mediapipe/modules (``SsdAnchorsCalculatorOptions``,
  ``TensorsToDetectionsCalculatorOptions``): image letterboxed onto the square input by one
  affine map (corners onto corners, zero padding), RGB in [-1, 1]; anchors built layer by layer
  as ``SsdAnchorsCalculator`` does; score = sigmoid(clip(logit, -100, 100)); boxes decoded
  against the anchor centre with x/y/w/h scale = input size; kept >= 0.5; weighted
  non-maximum suppression (overlap 0.3), as in ``NonMaxSuppressionCalculator``.

Writes ``tests/data/reference/script.json``:
``{model: {image: [{"box": [x1, y1, x2, y2], "score": s, "label": l}, ...]}}``.

    python3 models/real/reference_script.py   # the real models fetched (models/real/fetch.py)
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from references import IMAGES, image_path, models_folder, write

THRESHOLD = 0.5


def interpreter(path: Path):  # type: ignore[no-untyped-def]
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def rgb(name: str) -> np.ndarray:
    img = cv2.imread(str(image_path(name)), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# -- SSD with post-processing (Coral's documentation) -------------------------------------------


def coco_labels(path: Path) -> dict[int, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            num, name = line.strip().split(maxsplit=1)
            out[int(num)] = name.strip()
    return out


def ssd(model: Path, labels: dict[int, str]) -> dict[str, list[dict]]:
    it = interpreter(model)
    inp = it.get_input_details()[0]
    out = {d["name"]: d["index"] for d in it.get_output_details()}
    results = {}
    for name in IMAGES:
        img = rgb(name)
        h, w = img.shape[:2]
        x = cv2.resize(img, (300, 300), interpolation=cv2.INTER_LINEAR)
        it.set_tensor(inp["index"], x[None].astype(np.uint8))
        it.invoke()
        boxes = it.get_tensor(out["TFLite_Detection_PostProcess"])[0]
        classes = it.get_tensor(out["TFLite_Detection_PostProcess:1"])[0]
        scores = it.get_tensor(out["TFLite_Detection_PostProcess:2"])[0]
        count = int(it.get_tensor(out["TFLite_Detection_PostProcess:3"])[0])
        dets = []
        for i in range(count):
            if scores[i] < THRESHOLD:
                continue
            ymin, xmin, ymax, xmax = (float(v) for v in boxes[i])
            box = [max(0.0, xmin) * w, max(0.0, ymin) * h, min(1.0, xmax) * w, min(1.0, ymax) * h]
            cid = round(float(classes[i]))
            dets.append({"box": [round(v, 2) for v in box], "score": round(float(scores[i]), 4),
                         "label": labels.get(cid, str(cid))})
        results[name] = dets
    return results


# -- MediaPipe anchor detectors (graph configs of mediapipe/modules) ----------------------------

# SsdAnchorsCalculatorOptions: num_layers, strides, interpolated_scale_aspect_ratio (1.0 adds
# a second anchor per aspect ratio, 0.0 none); aspect_ratios [1.0], fixed_anchor_size, offset 0.5
CONFIGS = {
    "face_full_range.tflite": {"size": 192, "strides": [4], "interpolated": 0.0,
                               "label": "face"},
    "face_back.tflite": {"size": 256, "strides": [16, 32, 32, 32], "interpolated": 1.0,
                         "label": "face"},
    "pose_detector.tflite": {"size": 224, "strides": [8, 16, 32, 32, 32], "interpolated": 1.0,
                             "label": "person"},
}


def mediapipe_anchors(size: int, strides: list[int], interpolated: float) -> np.ndarray:
    """SsdAnchorsCalculator with fixed_anchor_size: (x_center, y_center) per anchor."""
    anchors = []
    layer_id = 0
    while layer_id < len(strides):
        per_location = 0
        last = layer_id
        while last < len(strides) and strides[last] == strides[layer_id]:
            per_location += 1  # aspect ratio 1.0
            if interpolated > 0.0:
                per_location += 1
            last += 1
        stride = strides[layer_id]
        fmap = math.ceil(size / stride)
        for y in range(fmap):
            for x in range(fmap):
                for _ in range(per_location):
                    anchors.append(((x + 0.5) / fmap, (y + 0.5) / fmap))
        layer_id = last
    return np.asarray(anchors, np.float64)


def letterbox_affine(img: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    h, w = img.shape[:2]
    s = min(size / w, size / h)
    ox, oy = (size - w * s) / 2, (size - h * s) / 2
    m = np.array([[s, 0, ox], [0, s, oy]], np.float64)
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, s, ox, oy


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, overlap: float) -> list[tuple]:
    """NonMaxSuppressionCalculator, algorithm WEIGHTED: boxes overlapping the best remaining
    one by more than ``overlap`` are averaged into it, weighted by their scores."""
    order = list(np.argsort(-scores, kind="stable"))
    kept = []
    while order:
        best = order[0]
        b = boxes[best]
        group, rest = [], []
        for i in order:
            o = boxes[i]
            iw = min(b[2], o[2]) - max(b[0], o[0])
            ih = min(b[3], o[3]) - max(b[1], o[1])
            inter = max(0.0, iw) * max(0.0, ih)
            union = (b[2] - b[0]) * (b[3] - b[1]) + (o[2] - o[0]) * (o[3] - o[1]) - inter
            (group if union > 0 and inter / union > overlap else rest).append(i)
        weights = scores[group]
        merged = (boxes[group] * weights[:, None]).sum(0) / weights.sum()
        kept.append((merged, float(scores[best])))
        order = rest
    return kept


def anchor_detector(model: Path, cfg: dict) -> dict[str, list[dict]]:
    it = interpreter(model)
    inp = it.get_input_details()[0]
    outs = it.get_output_details()
    reg_i = next(d["index"] for d in outs if d["shape"][-1] > 1)
    cls_i = next(d["index"] for d in outs if d["shape"][-1] == 1)
    size = cfg["size"]
    anchors = mediapipe_anchors(size, cfg["strides"], cfg["interpolated"])
    results = {}
    for name in IMAGES:
        img = rgb(name)
        h, w = img.shape[:2]
        x, s, ox, oy = letterbox_affine(img, size)
        it.set_tensor(inp["index"], (x.astype(np.float32) / 127.5 - 1.0)[None])
        it.invoke()
        raw = it.get_tensor(reg_i)[0].astype(np.float64)
        logits = it.get_tensor(cls_i)[0, :, 0].astype(np.float64)
        assert raw.shape[0] == anchors.shape[0], (raw.shape, anchors.shape)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = scores >= THRESHOLD
        cx = raw[keep, 0] / size + anchors[keep, 0]
        cy = raw[keep, 1] / size + anchors[keep, 1]
        bw = raw[keep, 2] / size
        bh = raw[keep, 3] / size
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * size
        dets = []
        for box, score in weighted_nms(boxes, scores[keep], 0.3):
            x1 = (box[0] - ox) / s
            y1 = (box[1] - oy) / s
            x2 = (box[2] - ox) / s
            y2 = (box[3] - oy) / s
            box_img = [max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)]
            dets.append({"box": [round(v, 2) for v in box_img], "score": round(score, 4),
                         "label": cfg["label"]})
        results[name] = dets
    return results


def main() -> int:
    folder = models_folder()
    out: dict[str, dict] = {}
    labels = coco_labels(folder / "coco_labels.txt")
    out["ssd_mobilenet_v2_coco_quant_postprocess.tflite"] = ssd(
        folder / "ssd_mobilenet_v2_coco_quant_postprocess.tflite", labels
    )
    for model, cfg in CONFIGS.items():
        out[model] = anchor_detector(folder / model, cfg)
    return write("script.json", out)


if __name__ == "__main__":
    raise SystemExit(main())
