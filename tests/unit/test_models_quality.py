"""The quality numbers in models/README.md are what the shipped files really do.

Runs the shipped models with the bare LiteRT interpreter (no edge_agent code), so it checks
the model files themselves; the runtime's own path is tested by the inference tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
DATA = ROOT / "tests" / "data"

Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter


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
