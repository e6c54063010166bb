"""Train the digits classifier on scikit-learn's bundled 8x8 digits and export it twice:

- models/digits_float32.tflite  float32 in/out
- models/digits_int8.tflite     full-integer int8 (int8 weights per-channel, int8 activations,
                                int8 input, int8 output)

and the held-out test split tests/data/digits_test.npz, so CI can measure accuracy without
scikit-learn.

Pixel convention: a digit's raw value v in 0..16 (16 = ink) becomes the grayscale pixel
round(v * 255 / 16) (white ink on black); the float network sees pixel / 255 in [0, 1] (the
"unit" normalisation), so any 8x8 grayscale image (white-on-black) goes through the normal
preprocessing path.

    .venv-models/bin/python models/build/digits.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
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


def main() -> None:
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    raw = digits.images.astype(np.uint8)  # (1797, 8, 8), values 0..16
    labels = digits.target.astype(np.int64)
    raw_tr, raw_te, y_tr, y_te = train_test_split(
        raw, labels, test_size=TEST_FRACTION, random_state=SEED, stratify=labels
    )
    px_tr, px_te = to_pixels(raw_tr), to_pixels(raw_te)

    tf.keras.utils.set_random_seed(SEED)
    net = build_net()
    net.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_tr = px_tr.astype(np.float32)[..., None] / 255.0
    # Train on batches; the exported model keeps batch 1 (the Input's batch_size) for the edge.
    trainer = tf.keras.Sequential([tf.keras.Input(shape=(8, 8, 1)), *net.layers])
    trainer.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                    loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trainer.fit(x_tr, y_tr, epochs=60, batch_size=32, verbose=0, validation_split=0.0)

    conv = tf.lite.TFLiteConverter.from_keras_model(net)
    float_bytes = conv.convert()

    def representative() -> object:
        for img in px_tr[:300]:
            yield [img.astype(np.float32)[None, :, :, None] / 255.0]

    conv = tf.lite.TFLiteConverter.from_keras_model(net)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    int8_bytes = conv.convert()

    acc_f = accuracy(float_bytes, px_te, y_te)
    acc_q = accuracy(int8_bytes, px_te, y_te)
    print(f"held-out n={len(y_te)}  float32 accuracy {acc_f:.4f}  int8 accuracy {acc_q:.4f}")
    if abs(acc_f - acc_q) > 0.01:
        raise SystemExit("int8 accuracy is more than 1 point away from float; not writing")

    write_atomic(MODELS_DIR / "digits_float32.tflite", float_bytes)
    write_atomic(MODELS_DIR / "digits_int8.tflite", int8_bytes)
    write_json(MODELS_DIR / "digits_float32.json", description())
    write_json(MODELS_DIR / "digits_int8.json", description())
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, images=px_te, raw=raw_te, labels=y_te)
    write_atomic(TEST_DATA_DIR / "digits_test.npz", buf.getvalue())


if __name__ == "__main__":
    main()
