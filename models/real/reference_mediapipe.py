#!/usr/bin/env python3
"""Reference results from MediaPipe's own Tasks API (the package these models are made for),
run offline on the fetched files. Needs ``mediapipe`` (1.2.3 was used) in its own virtualenv:

    python3 -m venv /tmp/mp && /tmp/mp/bin/pip install mediapipe==1.2.3
    /tmp/mp/bin/python models/real/reference_mediapipe.py

- ``efficientnet_lite0_int8.tflite``: ``ImageClassifier``, top 5 (label, score);
- ``deeplab_v3.tflite``: ``ImageSegmenter`` category mask at the image's size, the fraction
  of pixels of each class;
- ``selfie_segmenter.tflite``: ``ImageSegmenter`` category mask (one class: 0 = selfie,
  255 = background), the fraction of each;
- ``face_short_range.tflite``: ``FaceDetector`` (its defaults: score >= 0.5, NMS 0.3).

Writes ``tests/data/reference/mediapipe.json``. Nothing of ``edge_agent`` is imported.
"""

from __future__ import annotations

import numpy as np
from references import IMAGES, image_path, models_folder, write


def main() -> int:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    folder = models_folder()
    images = {n: mp.Image.create_from_file(str(image_path(n))) for n in IMAGES}
    out: dict[str, dict] = {"mediapipe": {"version": mp.__version__}}

    def opts(name: str) -> BaseOptions:
        return BaseOptions(model_asset_path=str(folder / name))

    clf = vision.ImageClassifier.create_from_options(
        vision.ImageClassifierOptions(base_options=opts("efficientnet_lite0_int8.tflite"),
                                      max_results=5)
    )
    out["efficientnet_lite0_int8.tflite"] = {
        n: [{"label": c.category_name, "score": round(c.score, 4)}
            for c in clf.classify(img).classifications[0].categories]
        for n, img in images.items()
    }
    clf.close()

    seg = vision.ImageSegmenter.create_from_options(
        vision.ImageSegmenterOptions(base_options=opts("deeplab_v3.tflite"),
                                     output_category_mask=True)
    )
    labels = seg.labels
    result = {}
    for n, img in images.items():
        mask = seg.segment(img).category_mask.numpy_view()
        ids, counts = np.unique(mask, return_counts=True)
        pairs = zip(ids, counts, strict=True)
        result[n] = {labels[int(i)]: round(float(c) / mask.size, 4) for i, c in pairs}
    out["deeplab_v3.tflite"] = result
    seg.close()

    seg = vision.ImageSegmenter.create_from_options(
        vision.ImageSegmenterOptions(base_options=opts("selfie_segmenter.tflite"),
                                     output_category_mask=True)
    )
    result = {}
    for n, img in images.items():
        mask = seg.segment(img).category_mask.numpy_view()
        selfie = round(float((mask == 0).mean()), 4)
        result[n] = {"selfie": selfie, "background": round(1.0 - selfie, 4)}
    out["selfie_segmenter.tflite"] = result
    seg.close()

    fd = vision.FaceDetector.create_from_options(
        vision.FaceDetectorOptions(base_options=opts("face_short_range.tflite"))
    )
    result = {}
    for n, img in images.items():
        dets = []
        for d in fd.detect(img).detections:
            b = d.bounding_box
            dets.append({"box": [b.origin_x, b.origin_y, b.origin_x + b.width,
                                 b.origin_y + b.height],
                         "score": round(d.categories[0].score, 4), "label": "face"})
        result[n] = dets
    out["face_short_range.tflite"] = result
    fd.close()

    return write("mediapipe.json", out)


if __name__ == "__main__":
    raise SystemExit(main())
