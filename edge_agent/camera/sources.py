"""Frame sources: V4L2 cameras, network streams, video files, image folders, synthetic.

A source is opened, read frame by frame and closed by the :class:`~.reader.CameraReader`,
which owns reconnection. ``read()`` returns a BGR image, ``None`` at the end of a finite
source, raises :class:`~edge_agent.errors.FrameError` for one unusable frame (skipped) and
:class:`~edge_agent.errors.SourceError` when the source as a whole failed (reconnect).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import CameraConfig
from ..errors import FrameError, SourceError
from .synthetic import synthetic_frame

# OpenCV's own warnings ("can't open camera by index"...) would add a second, less useful line
# to our one-line errors; our messages say what failed and where.
try:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - very old OpenCV
    pass

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
STREAM_TIMEOUT_MS = 5000


class FrameSource(ABC):
    """Base of every source. ``live``: the end of the stream means "reconnect", not "done".

    ``pace_fps``: when set, the reader delivers at most that many frames per second (a file
    or the synthetic pattern played like a camera); live cameras pace themselves.
    """

    name: str = "source"
    live: bool = False
    pace_fps: float | None = None
    decode_threads: int | None = None  # FFmpeg decoder threads (None: FFmpeg's default)

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> np.ndarray | None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device/file; safe to call twice."""

    def check_form(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`SourceError` if the source is malformed (no I/O; a camera that is
        not there yet is not malformed)."""

    def describe(self) -> str:
        return self.name


class SyntheticSource(FrameSource):
    """The deterministic test pattern (see :func:`synthetic_frame`); never ends."""

    def __init__(self, width: int = 640, height: int = 480, fps: float | None = 30.0) -> None:
        self.width = width
        self.height = height
        self.pace_fps = fps
        self.name = f"synthetic {width}x{height}"
        self.live = True
        self._k = 0

    def open(self) -> None:
        self._k = 0

    def read(self) -> np.ndarray:
        img = synthetic_frame(self._k, self.width, self.height)
        self._k += 1
        return img


class OpenCVSource(FrameSource):
    """cv2.VideoCapture over a V4L2 device, an rtsp/http(s) URL or a video file."""

    def __init__(
        self,
        target: int | str,
        *,
        live: bool,
        loop: bool = False,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        pace_fps: float | None = None,
    ) -> None:
        self.target = target
        self.live = live
        self.loop = loop
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self.pace_fps = pace_fps
        self.pace_own_rate = False  # set by default_pace: play a file at its own frame rate
        self.name = f"/dev/video{target}" if isinstance(target, int) else str(target)
        self._cap: Any = None
        self._frames_since_open = 0

    def check_form(self) -> None:
        if isinstance(self.target, int):
            return
        if self._is_device():
            if not re.fullmatch(r"/dev/[\w./:+-]+", self.target) or "/../" in self.target:
                raise SourceError(f"{self.target}: not a device path")
            return
        if self._is_stream():
            check_stream_url(self.target)

    def _is_device(self) -> bool:
        return isinstance(self.target, int) or str(self.target).startswith("/dev/")

    def _is_stream(self) -> bool:
        return isinstance(self.target, str) and bool(re.match(r"^[a-z]+://", self.target))

    def open(self) -> None:
        self.close()
        if not self._is_device() and not self._is_stream() and not Path(str(self.target)).is_file():
            raise SourceError(f"{self.target}: no such video file")
        if self._is_device():
            target = self.target
            if isinstance(target, str):
                if not Path(target).exists():
                    raise SourceError(f"{target}: no such camera device")
                m = re.fullmatch(r"/dev/video(\d+)", target)
                target = int(m.group(1)) if m else target
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        elif self._is_stream():
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                *self._thread_params(),
            ]
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, self._thread_params())
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.name}: cannot open (device busy, unreachable or not video)")
        if self._is_device():
            if self.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.pace_own_rate and not self.pace_fps:
            rate = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.pace_fps = rate if 1.0 <= rate <= 240.0 else FILE_PACE_FPS
        self._cap = cap
        self._frames_since_open = 0

    def _thread_params(self) -> list[int]:
        n = self.decode_threads
        return [] if n is None else [cv2.CAP_PROP_N_THREADS, max(1, int(n))]

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"{self.name}: not open")
        ok, img = self._cap.read()
        if ok and img is not None:
            self._frames_since_open += 1
            return np.asarray(img)
        if self.live:
            raise SourceError(f"{self.name}: stream ended or stopped delivering frames")
        if self.loop:
            if self._frames_since_open == 0:
                raise SourceError(f"{self.name}: no frame could be decoded")
            self.open()  # rewinding by reopening also notices a file that was removed
            return self.read()
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource(FrameSource):
    """Every image of a folder in name order, looping; non-images are skipped and reported."""

    def __init__(
        self,
        folder: Path,
        *,
        loop: bool = True,
        pace_fps: float | None = None,
        only: Path | None = None,
    ) -> None:
        self.folder = folder
        self.only = only
        self.loop = loop
        self.pace_fps = pace_fps
        self.name = str(only or folder)
        self._files: list[Path] = []
        self._i = 0
        self._good_this_pass = 0

    def _list(self) -> list[Path]:
        if self.only is not None:
            if not self.only.is_file():
                raise SourceError(f"{self.only}: no such image file")
            return [self.only]
        try:
            return sorted(p for p in self.folder.iterdir() if p.is_file())
        except OSError as exc:
            raise SourceError(f"{self.folder}: cannot list image folder: {exc.strerror}") from None

    def open(self) -> None:
        self._files = self._list()
        if not self._files:
            raise SourceError(f"{self.folder}: image folder is empty")
        self._i = 0
        self._good_this_pass = 0

    def read(self) -> np.ndarray | None:
        if self._i >= len(self._files):
            if not self.loop:
                return None
            if self._good_this_pass == 0:
                raise SourceError(f"{self.folder}: no readable image in the folder")
            self.open()
        path = self._files[self._i]
        self._i += 1
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            raise FrameError(f"{path}: cannot read ({exc.strerror}); skipped") from None
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            if self.only is not None:  # the source is this one image: nothing else to take
                raise SourceError(f"{path}: not a decodable image")
            raise FrameError(f"{path}: not a decodable image; skipped")
        self._good_this_pass += 1
        return np.asarray(img)


IMAGE_PACE_FPS = 1.0  # one image, looped: it does not change
FOLDER_PACE_FPS = 5.0
FILE_PACE_FPS = 15.0  # a video file that does not say its rate


def default_pace(source: FrameSource, policy: str) -> None:
    """A file source the agent runs on is played like a camera, not as fast as it decodes: a
    video at its own frame rate, an image folder at 5 fps, one image at 1 fps — unless
    ``camera.fps`` says otherwise, or ``camera.policy = "all"`` asks for every frame (then the
    pipeline takes them one by one at its own speed)."""
    if source.live or source.pace_fps or policy != "latest":
        return
    if isinstance(source, ImageFolderSource):
        source.pace_fps = IMAGE_PACE_FPS if source.only is not None else FOLDER_PACE_FPS
    elif isinstance(source, OpenCVSource):
        source.pace_own_rate = True


STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")


def check_stream_url(url: str) -> None:
    """A stream URL needs a known scheme, a host and a valid port; says which part is wrong."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in STREAM_SCHEMES:
        raise SourceError(f"{url}: unknown stream scheme {parts.scheme!r}; use one of "
                          + ", ".join(STREAM_SCHEMES))
    try:
        port = parts.port
    except ValueError:
        raise SourceError(f"{url}: the port is not a number from 0 to 65535") from None
    if not parts.hostname and not (parts.scheme == "udp" and port):
        raise SourceError(f"{url}: no host in the URL")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise SourceError(f"{url!r}: spaces or control characters in the URL")


def open_source(cfg: CameraConfig) -> FrameSource:
    """The source named by ``camera.source`` (not opened yet; the reader opens it)."""
    src = cfg.source.strip()
    if src == "synthetic":
        return SyntheticSource(cfg.width or 640, cfg.height or 480, cfg.fps or 30.0)
    if src == "demo":  # the shipped clip, looping, played at its own 15 fps like a camera
        from ..errors import ModelError
        from ..resources import demo_clip

        try:
            clip = demo_clip()
        except ModelError as exc:
            raise SourceError(str(exc)) from None
        return OpenCVSource(clip.as_posix(), live=False, loop=True, pace_fps=cfg.fps or 15.0)
    if src.isdigit():
        return OpenCVSource(
            int(src), live=True, width=cfg.width, height=cfg.height, fps=cfg.fps,
            fourcc=cfg.fourcc,
        )
    if src.startswith("/dev/"):
        return OpenCVSource(
            src, live=True, width=cfg.width, height=cfg.height, fps=cfg.fps, fourcc=cfg.fourcc
        )
    if re.match(r"^[a-z][a-z0-9+.-]*://", src) and not src.startswith("file://"):
        return OpenCVSource(src, live=True)
    if src.startswith("file://"):
        src = src[len("file://") :]
    path = Path(os.path.expanduser(src))
    if path.is_dir():
        return ImageFolderSource(path, loop=cfg.loop, pace_fps=cfg.fps)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path.parent, loop=cfg.loop, pace_fps=cfg.fps, only=path)
    return OpenCVSource(path.as_posix(), live=False, loop=cfg.loop, pace_fps=cfg.fps)
