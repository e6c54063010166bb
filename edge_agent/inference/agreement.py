"""How far one model's result agrees with another's on the same frame (pure: numpy only).

The one comparison core: ``models compare`` uses it, and so can shadow evaluation on the device
and a rollout's criteria. ``a`` is always the reference, ``b`` the candidate.

- detections: greedy one-to-one matching by IoU (highest first, same label), a match needs
  ``IoU >= iou_min`` (0.5); precision = matched / len(b), recall = matched / len(a); mean IoU
  of the matches and the score shift (b - a) of each match.
- classification: top-1 agreement (b's first class is a's first class) and top-k agreement
  (a's first class is within b's first k).
- segmentation: share of pixels with the same class, mean IoU over the classes present.
- tensors: cosine similarity and the largest absolute difference of two outputs.

No I/O, no OpenCV, no interpreter: results in, numbers out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .result import ClassScore, Detection, Result

IOU_MATCH = 0.5
TOP_K = 5


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (0.0 if either is empty)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def iou_matrix(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> np.ndarray:
    """``[len(a), len(b)]`` IoU of every pair of boxes."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float64)
    x = np.asarray(a, np.float64)[:, None, :]
    y = np.asarray(b, np.float64)[None, :, :]
    iw = np.clip(np.minimum(x[..., 2], y[..., 2]) - np.maximum(x[..., 0], y[..., 0]), 0, None)
    ih = np.clip(np.minimum(x[..., 3], y[..., 3]) - np.maximum(x[..., 1], y[..., 1]), 0, None)
    inter = iw * ih
    area_x = (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    area_y = (y[..., 2] - y[..., 0]) * (y[..., 3] - y[..., 1])
    union = area_x + area_y - inter
    out: np.ndarray = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def match_detections(
    a: Sequence[Detection], b: Sequence[Detection], iou_min: float = IOU_MATCH
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(i in a, j in b, IoU)``: highest IoU first, same label only."""
    ious = iou_matrix([d.box for d in a], [d.box for d in b])
    pairs = [
        (float(ious[i, j]), i, j)
        for i in range(len(a))
        for j in range(len(b))
        if ious[i, j] >= iou_min and a[i].label == b[j].label
    ]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for iou, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((i, j, iou))
    return out


@dataclass(frozen=True)
class DetectionAgreement:
    """Detections of b against a on one frame (or summed over frames)."""

    ref: int  # detections of a
    cand: int  # detections of b
    ious: tuple[float, ...] = ()  # IoU of each match
    score_shifts: tuple[float, ...] = ()  # b score - a score of each match

    @property
    def matched(self) -> int:
        return len(self.ious)

    @property
    def precision(self) -> float:
        """Share of b's detections that a also made (1.0 when b made none)."""
        return self.matched / self.cand if self.cand else 1.0

    @property
    def recall(self) -> float:
        """Share of a's detections that b also made (1.0 when a made none)."""
        return self.matched / self.ref if self.ref else 1.0

    def __add__(self, other: DetectionAgreement) -> DetectionAgreement:
        return DetectionAgreement(
            self.ref + other.ref,
            self.cand + other.cand,
            self.ious + other.ious,
            self.score_shifts + other.score_shifts,
        )

    def disagreement(self) -> float:
        """0 = the same detections at the same places, 1 = nothing in common."""
        total = self.ref + self.cand
        if total == 0:
            return 0.0
        return 1.0 - 2.0 * sum(self.ious) / total


def detection_agreement(
    a: Sequence[Detection], b: Sequence[Detection], iou_min: float = IOU_MATCH
) -> DetectionAgreement:
    matches = match_detections(a, b, iou_min)
    return DetectionAgreement(
        len(a),
        len(b),
        tuple(iou for _, _, iou in matches),
        tuple(float(b[j].score - a[i].score) for i, j, _ in matches),
    )


@dataclass(frozen=True)
class ClassAgreement:
    top1: bool  # b's first class is a's first class
    topk: bool  # a's first class is among b's first k
    score_shift: float  # b's score of a's first class - a's score of it (-a's score if absent)

    def disagreement(self) -> float:
        return (0.0 if self.top1 else 1.0) + (0.0 if self.topk else 1.0) + abs(self.score_shift)


def class_agreement(
    a: Sequence[ClassScore], b: Sequence[ClassScore], k: int = TOP_K
) -> ClassAgreement:
    """Agreement of two ranked class lists (best first). Empty lists agree with each other."""
    if not a:
        return ClassAgreement(not b, True, 0.0)
    best = a[0].class_id
    ids_b = [c.class_id for c in b]
    score_b = next((c.score for c in b if c.class_id == best), 0.0)
    return ClassAgreement(
        bool(ids_b) and ids_b[0] == best, best in ids_b[:k], float(score_b - a[0].score)
    )


@dataclass(frozen=True)
class MaskAgreement:
    pixels: int
    same: int
    class_iou: tuple[float, ...] = ()  # IoU of each class present in a or b

    @property
    def pixel_agreement(self) -> float:
        return self.same / self.pixels if self.pixels else 1.0

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.class_iou)) if self.class_iou else 1.0

    def disagreement(self) -> float:
        return 1.0 - self.pixel_agreement


def mask_agreement(a: np.ndarray, b: np.ndarray) -> MaskAgreement:
    """Two class masks of the same shape (one class id per pixel)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {list(a.shape)} vs {list(b.shape)}")
    ious = []
    for c in np.union1d(np.unique(a), np.unique(b)):
        inter = int(np.count_nonzero((a == c) & (b == c)))
        union = int(np.count_nonzero((a == c) | (b == c)))
        ious.append(inter / union)
    return MaskAgreement(int(a.size), int(np.count_nonzero(a == b)), tuple(ious))


@dataclass(frozen=True)
class TensorAgreement:
    cosine: float
    max_abs: float


def tensor_agreement(a: np.ndarray, b: np.ndarray) -> TensorAgreement:
    """Cosine similarity (1.0 for two zero tensors) and max |a - b| of two real tensors."""
    x = np.asarray(a, np.float64).reshape(-1)
    y = np.asarray(b, np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"tensors differ in size: {x.size} vs {y.size}")
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 and ny == 0.0:
        cosine = 1.0
    elif nx == 0.0 or ny == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(x, y) / (nx * ny))
    return TensorAgreement(cosine, float(np.max(np.abs(x - y))) if x.size else 0.0)


@dataclass(frozen=True)
class FrameAgreement:
    """Agreement of b with a on one frame: the part that fits the results' kind."""

    kind: str
    detections: DetectionAgreement | None = None
    classes: ClassAgreement | None = None
    mask: MaskAgreement | None = None

    def disagreement(self) -> float:
        """One number to rank frames by (higher = the two models disagree more)."""
        if self.detections is not None:
            return self.detections.disagreement()
        if self.classes is not None:
            return self.classes.disagreement()
        if self.mask is not None:
            return self.mask.disagreement()
        return 0.0


def compare_results(
    a: Result, b: Result, iou_min: float = IOU_MATCH, k: int = TOP_K
) -> FrameAgreement:
    """Agreement of candidate ``b`` with reference ``a`` (results of the same kind)."""
    if a.kind != b.kind:
        raise ValueError(f"results of different kinds: {a.kind} vs {b.kind}")
    if a.kind == "detection":
        return FrameAgreement(
            "detection", detections=detection_agreement(a.detections, b.detections, iou_min)
        )
    if a.kind == "classification":
        return FrameAgreement("classification", classes=class_agreement(a.classes, b.classes, k))
    if a.kind == "segmentation" and a.mask is not None and b.mask is not None:
        if a.mask.classes.shape == b.mask.classes.shape:
            return FrameAgreement(
                "segmentation", mask=mask_agreement(a.mask.classes, b.mask.classes)
            )
    return FrameAgreement(a.kind)


@dataclass
class AgreementTally:
    """Frame agreements summed up; :meth:`summary` is what reports and criteria read."""

    kind: str
    frames: int = 0
    detections: DetectionAgreement = field(default_factory=lambda: DetectionAgreement(0, 0))
    top1: int = 0
    topk: int = 0
    k: int = TOP_K
    class_shifts: list[float] = field(default_factory=list)
    mask_pixels: int = 0
    mask_same: int = 0
    judged: int = 0  # frames that carried something to compare (a raw result carries nothing)

    def add(self, frame: FrameAgreement) -> None:
        if frame.kind != self.kind:
            raise ValueError(f"a {frame.kind} frame in a {self.kind} tally")
        self.frames += 1
        if frame.detections is not None:
            self.detections = self.detections + frame.detections
        if frame.classes is not None:
            self.top1 += int(frame.classes.top1)
            self.topk += int(frame.classes.topk)
            self.class_shifts.append(frame.classes.score_shift)
        if frame.mask is not None:
            self.mask_pixels += frame.mask.pixels
            self.mask_same += frame.mask.same
        if any(x is not None for x in (frame.detections, frame.classes, frame.mask)):
            self.judged += 1

    def agreement(self) -> float | None:
        """One figure in [0, 1] for "how far b agrees with a" over the frames (None: nothing
        comparable, e.g. raw outputs): detections: the F1 of the matches,
        ``2 * matched / (detections of a + detections of b)`` (1.0 when neither found anything);
        classification: top-1 agreement; segmentation: the share of pixels of the same class."""
        if not self.judged:
            return None
        if self.kind == "detection":
            d = self.detections
            total = d.ref + d.cand
            return 2.0 * d.matched / total if total else 1.0
        if self.kind == "classification":
            return self.top1 / self.judged
        if self.kind == "segmentation":
            return self.mask_same / self.mask_pixels if self.mask_pixels else 1.0
        return None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "frames": self.frames}
        if self.kind == "detection":
            d = self.detections
            shifts = np.asarray(d.score_shifts or (0.0,))
            out.update(
                {
                    "iou_match": IOU_MATCH,
                    "detections_a": d.ref,
                    "detections_b": d.cand,
                    "matched": d.matched,
                    "precision": round(d.precision, 4),
                    "recall": round(d.recall, 4),
                    "mean_iou": round(float(np.mean(d.ious)), 4) if d.ious else None,
                    "score_shift_mean": round(float(shifts.mean()), 4) if d.ious else None,
                    "score_shift_max_abs": round(float(np.abs(shifts).max()), 4)
                    if d.ious
                    else None,
                }
            )
        elif self.kind == "classification":
            n = max(self.frames, 1)
            out.update(
                {
                    "top1_agreement": round(self.top1 / n, 4),
                    f"top{self.k}_agreement": round(self.topk / n, 4),
                    "score_shift_mean": round(float(np.mean(self.class_shifts)), 4)
                    if self.class_shifts
                    else None,
                }
            )
        elif self.kind == "segmentation" and self.mask_pixels:
            out["pixel_agreement"] = round(self.mask_same / self.mask_pixels, 4)
        return out


@dataclass
class TensorTally:
    """Per-output tensor agreement over frames: mean and worst cosine, largest |a - b|."""

    names: list[str]
    cosines: list[list[float]] = field(default_factory=list)
    max_abs: list[float] = field(default_factory=list)

    def add(self, a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> None:
        if len(a) != len(self.names) or len(b) != len(self.names):
            raise ValueError(f"expected {len(self.names)} outputs, got {len(a)} and {len(b)}")
        if not self.cosines:
            self.cosines = [[] for _ in self.names]
            self.max_abs = [0.0 for _ in self.names]
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            t = tensor_agreement(x, y)
            self.cosines[i].append(t.cosine)
            self.max_abs[i] = max(self.max_abs[i], t.max_abs)

    def summary(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "cosine_mean": round(float(np.mean(c)), 6) if c else None,
                "cosine_min": round(float(np.min(c)), 6) if c else None,
                "max_abs_error": round(float(m), 6),
            }
            for name, c, m in zip(
                self.names,
                self.cosines or [[]] * len(self.names),
                self.max_abs or [0.0] * len(self.names),
                strict=True,
            )
        ]
