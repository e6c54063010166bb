"""The quality numbers in models/README.md are what the shipped files really do.

Runs the shipped models with the bare LiteRT interpreter (no edge_agent code), so it checks
the model files themselves; the runtime's own path is tested by the inference tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
DATA = ROOT / "tests" / "data"



def _accuracy(model: Path, images: np.ndarray, labels: np.ndarray) -> float:
    it = Interpreter(model_path=str(model))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    correct = 0
    for img, label in zip(images, labels, strict=True):
        x = img.astype(np.float32)[None, :, :, None] / 255.0
        if inp["dtype"] != np.float32:
            scale, zero_point = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.rint(x / scale + zero_point), info.min, info.max)
        it.set_tensor(inp["index"], x.astype(inp["dtype"]))
        it.invoke()
        correct += int(np.argmax(it.get_tensor(out["index"])[0]) == label)
    return 100.0 * correct / len(labels)


def _readme_accuracy(kind: str) -> float:
    text = (MODELS / "README.md").read_text()
    m = re.search(rf"{kind} (\d+\.\d+) %", text)
    assert m, f"models/README.md states no {kind} accuracy"
    return float(m.group(1))


def test_digits_int8_within_one_point_of_float_and_readme_is_true() -> None:
    data = np.load(DATA / "digits_test.npz")
    images, labels = data["images"], data["labels"]
    assert images.dtype == np.uint8 and images.shape == (450, 8, 8)
    assert np.array_equal(images, np.rint(data["raw"] * 255.0 / 16.0).astype(np.uint8))
    acc_float = _accuracy(MODELS / "digits_float32.tflite", images, labels)
    acc_int8 = _accuracy(MODELS / "digits_int8.tflite", images, labels)
    assert acc_float > 95.0
    assert abs(acc_float - acc_int8) <= 1.0
    assert acc_float == pytest.approx(_readme_accuracy("float32"), abs=0.01)
    assert acc_int8 == pytest.approx(_readme_accuracy("int8"), abs=0.01)


def _letterbox_rgb(path: Path, size: int) -> np.ndarray:
    """Centred letterbox with INTER_LINEAR, as edge-agent's preprocessing does."""
    import cv2

    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    h, w = bgr.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out[top : top + nh, left : left + nw] = resized[:, :, ::-1]
    return out


def _top_face_score(model: Path, rgb: np.ndarray) -> float:
    it = Interpreter(model_path=str(model))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = rgb.astype(np.float32)[None] / 127.5 - 1.0
    if inp["dtype"] != np.float32:
        scale, zero_point = inp["quantization"]
        x = np.clip(np.rint(x / scale + zero_point), -128, 127)
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    (det,) = [d for d in it.get_output_details() if d["name"] == "classificators"]
    logits = it.get_tensor(det["index"]).astype(np.float32)
    if det["dtype"] != np.float32:
        scale, zero_point = det["quantization"]
        logits = (logits - zero_point) * scale
    return float(1.0 / (1.0 + np.exp(-np.clip(logits.max(), -30, 30))))


def _readme_face_scores() -> dict[str, tuple[float, float]]:
    rows = {}
    for line in (MODELS / "README.md").read_text().splitlines():
        m = re.match(r"^\| (\w+)\.jpg \| (\d\.\d+) \| (\d\.\d+) \|", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return rows


@pytest.mark.parametrize("image", ["astronaut", "coffee", "chelsea"])
def test_blazeface_scores_match_readme_and_threshold(image: str) -> None:
    claimed = _readme_face_scores()[image]
    rgb = _letterbox_rgb(DATA / f"{image}.jpg", 128)
    for kind, want in zip(("float32", "int8"), claimed, strict=True):
        model = MODELS / f"blazeface_{kind}.tflite"
        threshold = json.loads(model.with_suffix(".json").read_text())["decoder"]["threshold"]
        got = _top_face_score(model, rgb)
        assert got == pytest.approx(want, abs=0.02), f"{kind} on {image}: README says {want}"
        assert (got > threshold) == (image == "astronaut"), f"{kind} {image} {got} vs {threshold}"
