"""What the pipeline hands out per frame (:class:`FrameResult`) and the built-in sinks.

A sink is any callable taking a :class:`FrameResult`; it runs on the pipeline's post thread and
must not block for long (a sink that raises is counted and logged, never fatal).
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np


@dataclass
class FrameResult:
    """One frame's outcome, given to every sink and to ``Component.on_result``.

    ``result`` is the inference Result (None when a stage failed; then ``error`` says why);
    ``timings`` are seconds per stage (``age``, ``preprocess``, ``invoke``, ``postprocess``,
    ``e2e``); ``image`` is the original BGR frame (do not modify it).
    """

    seq: int
    wall_time: float
    t_capture: float
    result: Any
    timings: dict[str, float]
    model: str
    image: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "frame": self.seq,
            "ts": round(self.wall_time, 6),
            "model": self.model,
            "latency_ms": {k: round(v * 1000, 3) for k, v in self.timings.items()},
        }
        if self.error is not None:
            body["error"] = self.error
        elif self.result is not None:
            body.update(self.result.to_json())
        return body


Sink = Callable[[FrameResult], None]


class JsonLinesSink:
    """Writes each result as one JSON line (local runs; ``pipeline.stdout_jsonl``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, fr: FrameResult) -> None:
        line = json.dumps(fr.to_json(), separators=(",", ":"), default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class SnapshotRing:
    """The last ``size`` frames with their results; annotated and saved on demand."""

    def __init__(self, size: int = 8) -> None:
        self._ring: deque[FrameResult] = deque(maxlen=max(size, 1))
        self._lock = threading.Lock()
        self.size = size

    def __call__(self, fr: FrameResult) -> None:
        if self.size and fr.image is not None:
            with self._lock:
                self._ring.append(fr)

    def items(self) -> list[FrameResult]:
        with self._lock:
            return list(self._ring)

    def annotated(self, fr: FrameResult) -> np.ndarray:
        from ..inference.annotate import annotate

        assert fr.image is not None
        return annotate(fr.image, fr.result)

    def latest_jpeg(self) -> bytes | None:
        from ..inference.annotate import encode_jpeg

        items = self.items()
        return encode_jpeg(self.annotated(items[-1])) if items else None

    def save(self, directory: Path, *, last: int | None = None) -> list[Path]:
        """Write the kept frames as annotated JPEGs (atomically); returns the paths."""
        from ..common.atomicfile import atomic_write_bytes
        from ..inference.annotate import encode_jpeg

        directory.mkdir(parents=True, exist_ok=True)
        items = self.items()
        if last is not None:
            items = items[-last:]
        out = []
        for fr in items:
            path = directory / f"frame-{fr.seq:08d}.jpg"
            atomic_write_bytes(path, encode_jpeg(self.annotated(fr)), mode=0o640)
            out.append(path)
        return out
