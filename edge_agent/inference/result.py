"""What a decoder returns: detections in original frame pixels, class scores, a segmentation
(per-class area fractions and the class map), or raw tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ResultKind = Literal["detection", "classification", "segmentation", "raw"]

MAX_RAW_VALUES = 1000
"""Values printed per output by the ``raw`` decoder's JSON; a larger tensor is summarised
(shape, min, max, mean and its first values), so one frame stays a few KB."""


@dataclass(frozen=True)
class Detection:
    """One object: ``box`` is ``(x1, y1, x2, y2)`` in original frame pixels."""

    box: tuple[float, float, float, float]
    score: float
    label: str
    class_id: int = 0
    keypoints: tuple[tuple[float, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "label": self.label,
        }
        if self.keypoints:
            out["keypoints"] = [[round(x, 2), round(y, 2)] for x, y in self.keypoints]
        return out


@dataclass(frozen=True)
class ClassScore:
    label: str
    score: float
    class_id: int

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(float(self.score), 4)}


@dataclass(frozen=True)
class Segment:
    """One class of a segmentation: the share of the frame's pixels it covers."""

    label: str
    class_id: int
    fraction: float

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "class_id": self.class_id, "fraction": round(self.fraction, 4)}


@dataclass(frozen=True)
class SegmentationMask:
    """The class of each model-input pixel, and where the frame lies in it.

    ``box`` is the frame's rectangle in mask pixels ``(x1, y1, x2, y2)`` (the letterbox
    padding or the cropped-away part is outside it); ``frame_size`` is ``(width, height)``."""

    classes: np.ndarray
    box: tuple[int, int, int, int]
    frame_size: tuple[int, int]
    labels: tuple[str, ...] = ()


@dataclass
class Result:
    """The decoded output of one inference."""

    kind: ResultKind
    detections: list[Detection] = field(default_factory=list)
    classes: list[ClassScore] = field(default_factory=list)
    raw: list[np.ndarray] = field(default_factory=list)
    raw_names: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    mask: SegmentationMask | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"detections": [...]}``, ``{"classes": [...]}``, ``{"segments": [...]}`` or
        ``{"outputs": [...]}`` (each at most :data:`MAX_RAW_VALUES` values)."""
        if self.kind == "detection":
            return {"detections": [d.to_json() for d in self.detections]}
        if self.kind == "classification":
            return {"classes": [c.to_json() for c in self.classes]}
        if self.kind == "segmentation":
            out: dict[str, Any] = {"segments": [s.to_json() for s in self.segments]}
            if self.mask is not None:
                out["mask_shape"] = list(self.mask.classes.shape)
            return out
        names = self.raw_names or [str(i) for i in range(len(self.raw))]
        return {"outputs": [_raw_json(n, a) for n, a in zip(names, self.raw, strict=False)]}

    def scaled(self, s: float) -> Result:
        """The same result for the frame scaled by ``s`` (boxes and keypoints scaled)."""
        dets = [
            Detection(
                box=(d.box[0] * s, d.box[1] * s, d.box[2] * s, d.box[3] * s),
                score=d.score,
                label=d.label,
                class_id=d.class_id,
                keypoints=tuple((x * s, y * s) for x, y in d.keypoints),
            )
            for d in self.detections
        ]
        return Result(self.kind, dets, list(self.classes), list(self.raw), list(self.raw_names))

    def summary(self) -> str:
        """One short human line: ``2 detections: face 0.93, face 0.61``."""
        if self.kind == "detection":
            items = ", ".join(f"{d.label} {d.score:.2f}" for d in self.detections[:5])
            n = len(self.detections)
            return f"{n} detection{'s' if n != 1 else ''}" + (f": {items}" if items else "")
        if self.kind == "classification":
            return ", ".join(f"{c.label} {c.score:.3f}" for c in self.classes[:5]) or "no class"
        if self.kind == "segmentation":
            parts = ", ".join(f"{s.label} {100 * s.fraction:.1f}%" for s in self.segments[:5])
            return parts or "no class"
        return "outputs " + ", ".join(str(list(a.shape)) for a in self.raw)


def _raw_json(name: str, a: np.ndarray) -> dict[str, Any]:
    flat = np.asarray(a).reshape(-1)
    out: dict[str, Any] = {"name": name, "shape": list(np.shape(a))}
    if flat.size <= MAX_RAW_VALUES:
        out["values"] = flat.tolist()
        return out
    real = flat.astype(np.float64)
    out.update(
        min=float(real.min()),
        max=float(real.max()),
        mean=round(float(real.mean()), 6),
        values=flat[:MAX_RAW_VALUES].tolist(),
        truncated=True,
    )
    return out
