"""The V4L2 cameras of this machine and their formats, for ``edge-agent camera list``.

Read with the kernel's own ioctls (VIDIOC_QUERYCAP, VIDIOC_ENUM_FMT, VIDIOC_ENUM_FRAMESIZES) on
each ``/dev/videoN``, no v4l-utils needed. A node that is not a capture device (metadata nodes,
codecs) is listed as such; one that cannot be opened says why (busy, permissions).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes
VIDIOC_ENUM_FMT = 0xC0405602  # _IOWR('V', 2, struct v4l2_fmtdesc), 64 bytes
VIDIOC_ENUM_FRAMESIZES = 0xC02C564A  # _IOWR('V', 74, struct v4l2_frmsizeenum), 44 bytes
BUF_TYPE_VIDEO_CAPTURE = 1
CAP_VIDEO_CAPTURE = 0x00000001
CAP_DEVICE_CAPS = 0x80000000
FRMSIZE_TYPE_DISCRETE = 1
MAX_ENUM = 64


@dataclass
class Camera:
    path: str
    name: str = ""
    driver: str = ""
    bus: str = ""
    capture: bool = False
    formats: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "driver": self.driver, "bus": self.bus,
                "capture": self.capture, "formats": self.formats, "error": self.error}


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def fourcc(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip()


def parse_cap(buf: bytes) -> tuple[str, str, str, int]:
    """(driver, card, bus_info, effective capabilities) of a struct v4l2_capability."""
    driver, card, bus, _version, caps, device_caps = struct.unpack_from("16s32s32sIII", buf)
    eff = device_caps if caps & CAP_DEVICE_CAPS else caps
    return _text(driver), _text(card), _text(bus), eff


def _formats(fd: int) -> list[dict[str, Any]]:
    out = []
    for i in range(MAX_ENUM):
        buf = bytearray(struct.pack("III32sII12x", i, BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0))
        try:
            fcntl.ioctl(fd, VIDIOC_ENUM_FMT, buf)
        except OSError:
            break
        _i, _t, _flags, desc, pix, _mbus = struct.unpack_from("III32sII", buf)
        out.append({"fourcc": fourcc(pix), "description": _text(desc), "sizes": _sizes(fd, pix)})
    return out


def _sizes(fd: int, pix: int) -> list[str]:
    sizes = []
    for i in range(MAX_ENUM):
        buf = bytearray(struct.pack("III24x8x", i, pix, 0))
        try:
            fcntl.ioctl(fd, VIDIOC_ENUM_FRAMESIZES, buf)
        except OSError:
            break
        _i, _p, kind = struct.unpack_from("III", buf)
        if kind != FRMSIZE_TYPE_DISCRETE:  # stepwise/continuous: min and max of each side
            min_w, max_w, _sw, min_h, max_h, _sh = struct.unpack_from("6I", buf, 12)
            sizes.append(f"{min_w}x{min_h}..{max_w}x{max_h}")
            break
        w, h = struct.unpack_from("II", buf, 12)
        sizes.append(f"{w}x{h}")
    return sizes


def probe(path: str) -> Camera:
    cam = Camera(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        hint = {errno.EACCES: "; add the user to group video",
                errno.EBUSY: "; another program holds it"}.get(exc.errno or 0, "")
        cam.error = f"cannot open: {exc.strerror}{hint}"
        return cam
    try:
        buf = bytearray(104)
        try:
            fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
        except OSError as exc:
            cam.error = f"not a V4L2 device ({exc.strerror})"
            return cam
        cam.driver, cam.name, cam.bus, caps = parse_cap(bytes(buf))
        cam.capture = bool(caps & CAP_VIDEO_CAPTURE)
        if cam.capture:
            cam.formats = _formats(fd)
    finally:
        os.close(fd)
    return cam


def list_cameras(dev: Path = Path("/dev")) -> list[Camera]:
    nodes = sorted(dev.glob("video*"), key=lambda p: (len(p.name), p.name))
    return [probe(str(p)) for p in nodes]
