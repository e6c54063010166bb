"""The digits classifier on scikit-learn's bundled 8x8 digits, in two steps:

- ``--train`` (needs TensorFlow): train the network, export models/digits_float32.tflite
  (float32 in/out). Without it the shipped float model is used as it is.
- always: models/digits_int8.tflite, full-integer int8 (int8 weights per-channel, int8
  activations, int8 input and output), made by the product: `edge-agent models quantize`
  calibrated on 300 training images (a folder of PNGs, read through the agent's own
  preprocessing); refused if it is more than 1 point of top-1 away from float on the held-out
  450.

and the held-out test split tests/data/digits_test.npz, so CI can measure accuracy without
scikit-learn.

Pixel convention: a digit's raw value v in 0..16 (16 = ink) becomes the grayscale pixel
round(v * 255 / 16) (white ink on black); the float network sees pixel / 255 in [0, 1] (the
"unit" normalisation), so any 8x8 grayscale image (white-on-black) goes through the normal
preprocessing path.

    python models/build/digits.py            # quantise only: scikit-learn + edge-agent[modelops]
    .venv-models/bin/python models/build/digits.py --train
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # edge_agent of this checkout
from common import MODELS_DIR, TEST_DATA_DIR, write_atomic, write_json

SEED = 7
TEST_FRACTION = 0.25


def to_pixels(raw: np.ndarray) -> np.ndarray:
    return np.rint(raw.astype(np.float64) * 255.0 / 16.0).astype(np.uint8)


def build_net() -> object:
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(8, 8, 1), batch_size=1, name="pixels"),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(10, activation="softmax"),
        ]
    )


def accuracy(model_bytes: bytes, pixels: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy measured with ai-edge-litert, quantising with the input's own params."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    correct = 0
    for img, label in zip(pixels, labels, strict=True):
        x = img.astype(np.float32)[None, :, :, None] / 255.0
        if inp["dtype"] != np.float32:
            scale, zp = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.rint(x / scale + zp), info.min, info.max)
        it.set_tensor(inp["index"], x.astype(inp["dtype"]))
        it.invoke()
        correct += int(np.argmax(it.get_tensor(out["index"])[0]) == label)
    return correct / len(labels)


def description() -> dict[str, object]:
    return {
        "schema": 1,
        "color": "gray",
        "resize": "stretch",
        "normalize": "unit",
        "mean": None,
        "std": None,
        "decoder": {
            "name": "classification",
            "threshold": 0.0,
            "top_k": 3,
            "iou_threshold": 0.5,
            "labels": [str(d) for d in range(10)],
            "options": {},
        },
    }


def train(px_tr: np.ndarray, y_tr: np.ndarray) -> bytes:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    net = build_net()
    x_tr = px_tr.astype(np.float32)[..., None] / 255.0
    # Train on batches; the exported model keeps batch 1 (the Input's batch_size) for the edge.
    trainer = tf.keras.Sequential([tf.keras.Input(shape=(8, 8, 1)), *net.layers])
    trainer.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trainer.fit(x_tr, y_tr, epochs=60, batch_size=32, verbose=0, validation_split=0.0)
    return bytes(tf.lite.TFLiteConverter.from_keras_model(net).convert())


def quantize(float_path: Path, calibration: np.ndarray, out: Path) -> None:
    """`edge-agent models quantize FLOAT --calibrate FOLDER --frames 300 --out OUT`."""
    import cv2

    from edge_agent.modelops.quantize import QuantizeOptions, quantize_model

    with tempfile.TemporaryDirectory() as tmp:
        for n, img in enumerate(calibration):
            cv2.imwrite(f"{tmp}/{n:04d}.png", img)
        result = quantize_model(float_path, out, tmp,
                                QuantizeOptions(mode="int8", frames=len(calibration)))
    print(f"quantised on {result.frames} frames: steps {[s.name for s in result.steps]}, "
          f"{result.seconds}")


def main() -> None:
    import argparse

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ap = argparse.ArgumentParser()
    ap.add_argument("--train", action="store_true", help="retrain the float model (TensorFlow)")
    args = ap.parse_args()
    digits = load_digits()
    raw = digits.images.astype(np.uint8)  # (1797, 8, 8), values 0..16
    labels = digits.target.astype(np.int64)
    raw_tr, raw_te, y_tr, y_te = train_test_split(
        raw, labels, test_size=TEST_FRACTION, random_state=SEED, stratify=labels
    )
    px_tr, px_te = to_pixels(raw_tr), to_pixels(raw_te)
    float_path = MODELS_DIR / "digits_float32.tflite"
    float_bytes = train(px_tr, y_tr) if args.train else float_path.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        fpath = Path(tmp) / "digits_float32.tflite"
        fpath.write_bytes(float_bytes)
        write_json(fpath.with_suffix(".json"), description())
        qpath = Path(tmp) / "digits_int8.tflite"
        quantize(fpath, px_tr[:300], qpath)
        int8_bytes = qpath.read_bytes()

    acc_f = accuracy(float_bytes, px_te, y_te)
    acc_q = accuracy(int8_bytes, px_te, y_te)
    print(f"held-out n={len(y_te)}  float32 accuracy {acc_f:.4f}  int8 accuracy {acc_q:.4f}")
    if abs(acc_f - acc_q) > 0.01:
        raise SystemExit("int8 accuracy is more than 1 point away from float; not writing")

    write_atomic(float_path, float_bytes)
    write_atomic(MODELS_DIR / "digits_int8.tflite", int8_bytes)
    write_json(MODELS_DIR / "digits_float32.json", description())
    write_json(MODELS_DIR / "digits_int8.json", description())
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, images=px_te, raw=raw_te, labels=y_te)
    write_atomic(TEST_DATA_DIR / "digits_test.npz", buf.getvalue())


if __name__ == "__main__":
    main()
