"""What ``POST /v1/infer`` accepts as an image: checks and decoding, one :class:`BodyError`
(with its HTTP status) per way a body can be wrong. No sockets, no threads."""

from __future__ import annotations

import math
from urllib.parse import parse_qsl

import cv2
import numpy as np

# What a client may send as the body itself (anything else: 415); multipart is read apart.
IMAGE_TYPES = frozenset({
    "image/jpeg", "image/jpg", "image/png", "image/bmp", "image/webp", "image/tiff",
    "application/octet-stream", "",
})
JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"
MAX_PIXELS = 40_000_000  # 40 MP: more than any camera frame; a bigger image is refused


class BodyError(Exception):
    """A request body that is not what the endpoint takes; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def media_type(content_type: str | None) -> str:
    """``image/jpeg; charset=x`` -> ``image/jpeg`` (lower case; "" when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_type(content_type: str | None) -> str:
    mt = media_type(content_type)
    if mt != "multipart/form-data" and mt not in IMAGE_TYPES:
        raise BodyError(415, f"Content-Type {mt!r} is not an image: send image/jpeg, image/png, "
                        "application/octet-stream or multipart/form-data with a file part")
    return mt


PNG_SIG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, ...): C0-CF but DHT C4, JPG C8, DAC CC
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_pixels(data: bytes) -> int | None:
    """Width x height read from a JPEG's frame header or a PNG's IHDR without decoding; None
    for another format or a header that does not parse (the caller then assumes it is big)."""
    if data.startswith(PNG_SIG) and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
    if not data.startswith(JPEG_SOI):
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in JPEG_SOF:
            if i + 9 > n:
                return None
            height, width = data[i + 5:i + 7], data[i + 7:i + 9]
            return int.from_bytes(height, "big") * int.from_bytes(width, "big")
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan before any frame header
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def decode_image(data: bytes, where: str = "body") -> np.ndarray:
    """A BGR image from encoded bytes; :class:`BodyError` (422) for empty, truncated or
    undecodable data."""
    if not data:
        raise BodyError(422, f"{where}: empty; send the image's bytes")
    if data.startswith(JPEG_SOI) and JPEG_EOI not in data[-64:]:
        raise BodyError(422, f"{where}: truncated JPEG ({len(data)} bytes, no end-of-image "
                        "marker); send the whole file")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BodyError(422, f"{where}: {len(data)} bytes that are not an image OpenCV can "
                        "decode (JPEG, PNG, BMP, WebP, TIFF)")
    h, w = img.shape[:2]
    if h * w > MAX_PIXELS:
        raise BodyError(413, f"{where}: {w}x{h} pixels, more than {MAX_PIXELS}")
    return img


def infer_query(query: str) -> tuple[float | None, int | None]:
    """``threshold`` (a number from 0 to 1) and ``top_k`` (a whole number from 1 to 1000) of a
    ``/v1/infer`` query string, None when absent (the last one wins when repeated; other keys
    are ignored); :class:`BodyError` (422) naming the parameter otherwise."""
    threshold: float | None = None
    top_k: int | None = None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "threshold":
            try:
                threshold = float(value)
            except ValueError:
                threshold = math.nan
            if not 0.0 <= threshold <= 1.0:  # NaN fails too
                raise BodyError(422, f"query.threshold: {value[:40]!r} is not a number from 0 to 1")
        elif key == "top_k":
            try:
                top_k = int(value)
            except ValueError:
                top_k = 0
            if not 1 <= top_k <= 1000:
                raise BodyError(422, f"query.top_k: {value[:40]!r} is not a whole number from 1 "
                                "to 1000")
    return threshold, top_k
