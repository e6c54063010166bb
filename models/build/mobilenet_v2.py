"""Build models/mobilenet_v2_int8.tflite: MobileNetV2 1.0 224x224, RANDOM weights, full int8.

For benchmarks only: keras `weights=None`, so its predictions are meaningless. Full-integer
quantisation (int8 weights and activations, uint8 input, uint8 output) calibrated on the
scikit-image sample photos so the activation ranges are those of real images.

Run from the repo root with the `models` venv:
    .venv-models/bin/python models/build/mobilenet_v2.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    MODELS_DIR,
    letterbox,
    sample_photos,
    write_atomic,
    write_json,
)

SIZE = 224
SEED = 20240601


def main() -> None:
    import cv2
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    net = tf.keras.applications.MobileNetV2(
        input_shape=(SIZE, SIZE, 3), alpha=1.0, weights=None, classes=1000
    )

    photos = [img for _, img in sample_photos()]

    def representative() -> object:
        for img in photos:
            for variant in (letterbox(img, SIZE), cv2.resize(img, (SIZE, SIZE))):
                # MobileNetV2 expects [-1, 1] ("symmetric").
                x = variant.astype(np.float32)[None] / 127.5 - 1.0
                yield [x]

    conv = tf.lite.TFLiteConverter.from_keras_model(net)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    out = MODELS_DIR / "mobilenet_v2_int8.tflite"
    write_atomic(out, conv.convert())
    write_json(
        MODELS_DIR / "mobilenet_v2_int8.json",
        {
            "schema": 1,
            "color": "rgb",
            "resize": "stretch",
            "normalize": "symmetric",
            "mean": None,
            "std": None,
            "decoder": {
                "name": "classification",
                "threshold": 0.0,
                "top_k": 5,
                "iou_threshold": 0.5,
                "labels": [],
                "options": {},
            },
        },
    )
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
