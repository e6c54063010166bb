"""Write the test photos tests/data/{astronaut,coffee,chelsea}.jpg from scikit-image's bundled data.

Optionally draw a box on one to check it by eye:
    .venv-models/bin/python models/build/test_images.py [--draw x1 y1 x2 y2 OUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TEST_DATA_DIR, write_atomic

PHOTOS = ("astronaut", "coffee", "chelsea")
JPEG_QUALITY = 92


def main(argv: list[str]) -> None:
    import cv2
    import skimage.data

    for name in PHOTOS:
        rgb = np.asarray(getattr(skimage.data, name)())
        ok, jpg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        write_atomic(TEST_DATA_DIR / f"{name}.jpg", jpg.tobytes())
        print(f"{name}.jpg {rgb.shape[1]}x{rgb.shape[0]} {len(jpg)} bytes")
    if argv[:1] == ["--draw"]:
        x1, y1, x2, y2 = (int(v) for v in argv[1:5])
        img = cv2.imread(str(TEST_DATA_DIR / "astronaut.jpg"))
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 0), 1)
        cv2.imwrite(argv[5], img)


if __name__ == "__main__":
    main(sys.argv[1:])
