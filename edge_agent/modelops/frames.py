"""Frames for calibration and comparison from any camera source (the agent's own sources)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import FrameError, SourceError

MAX_FRAMES = 100_000


@dataclass
class FrameFeed:
    """Reads up to ``limit`` BGR frames from ``source`` (anything ``camera.source`` takes: a
    video file, an image folder or one image, ``demo``, ``synthetic``, a camera, a stream).
    Unusable frames are skipped and listed in ``skipped``; a failed source raises
    :class:`SourceError`; a finite source may end before ``limit``."""

    source: str
    limit: int
    skipped: list[str] = field(default_factory=list)
    read: int = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        from ..camera import open_source
        from ..config import CameraConfig

        if not 1 <= self.limit <= MAX_FRAMES:
            raise SourceError(f"frames must be 1..{MAX_FRAMES}, got {self.limit}")
        src = open_source(CameraConfig(source=self.source, loop=False))
        src.check_form()
        src.open()
        try:
            while self.read < self.limit:
                try:
                    img = src.read()
                except FrameError as exc:
                    self.skipped.append(str(exc))
                    if len(self.skipped) > max(100, self.limit):
                        raise SourceError(
                            f"{self.source}: {len(self.skipped)} unusable frames and counting; "
                            f"last: {exc}"
                        ) from None
                    continue
                if img is None:
                    break
                self.read += 1
                yield img
        finally:
            src.close()
        if self.read == 0:
            raise SourceError(f"{self.source}: no usable frame" + (
                f" ({self.skipped[-1]})" if self.skipped else ""))
