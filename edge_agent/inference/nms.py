"""Non-maximum suppression on ``[x1, y1, x2, y2]`` boxes (pure numpy)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def iou(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    return float(iou_matrix(a, b)[0, 0])


def nms(
    boxes: npt.ArrayLike, scores: npt.ArrayLike, iou_threshold: float, top_k: int
) -> npt.NDArray[np.intp]:
    """Indices kept by greedy NMS, best score first, at most ``top_k``."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < top_k:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        overlaps = iou_matrix(b[i : i + 1], b[order[1:]])[0]
        order = order[1:][overlaps <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def batched_nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    classes: npt.ArrayLike,
    iou_threshold: float,
    top_k: int,
) -> npt.NDArray[np.intp]:
    """NMS within each class (boxes of different classes never suppress each other)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    c = np.asarray(classes).reshape(-1)
    if b.size == 0:
        return np.zeros(0, np.intp)
    span = float(max(b.max(), 0.0) - min(b.min(), 0.0)) + 1.0
    shifted = b + (c.astype(np.float64) * span)[:, None]
    return nms(shifted, scores, iou_threshold, top_k)


def weighted_nms(
    boxes: npt.ArrayLike, scores: npt.ArrayLike, iou_threshold: float, top_k: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[npt.NDArray[np.intp]]]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of the boxes it
    suppresses. Returns (boxes, scores, member indices of each cluster)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    s = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-s, kind="stable")
    out_boxes: list[npt.NDArray[np.float64]] = []
    out_scores: list[float] = []
    members: list[npt.NDArray[np.intp]] = []
    while order.size and len(out_boxes) < top_k:
        i = int(order[0])
        overlaps = iou_matrix(b[i : i + 1], b[order])[0]
        cluster = order[overlaps > iou_threshold]
        if cluster.size == 0:
            cluster = order[:1]
        w = s[cluster]
        out_boxes.append((b[cluster] * w[:, None]).sum(axis=0) / w.sum())
        out_scores.append(float(s[i]))
        members.append(cluster)
        order = order[overlaps <= iou_threshold]
        order = order[order != i]
    if not out_boxes:
        return np.zeros((0, 4)), np.zeros(0), []
    return np.stack(out_boxes), np.asarray(out_scores), members
