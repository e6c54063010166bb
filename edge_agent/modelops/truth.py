"""Ground truth for ``models compare --truth``: a folder per class (classifiers) or COCO JSON
(detectors), and the accuracy of results against it. mAP comes from pycocotools (the
reference COCO evaluation), not from maths of our own."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.extras import pip_hint
from ..errors import TruthError
from ..inference.result import Result

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
MAX_TRUTH_BYTES = 256 * 1024 * 1024
MAX_ITEMS = 1_000_000


@dataclass(frozen=True)
class TruthItem:
    path: Path
    label: str | None = None  # class folder name (classifiers)
    image_id: int | None = None  # COCO image id (detectors)


@dataclass
class Truth:
    kind: str  # "classes" | "coco"
    where: Path
    items: list[TruthItem]
    coco: dict[str, Any] | None = None

    @property
    def metric(self) -> str:
        return "top-1" if self.kind == "classes" else "mAP@0.5"


def load_truth(path: Path, data: Path | None = None) -> Truth:
    """A directory: one sub-folder per class, named by the class label (or class id). A file:
    COCO JSON (images, annotations, categories); the images are found in ``data`` (a folder)
    or else beside the JSON file."""
    if path.is_dir():
        return _class_folders(path)
    if path.is_file():
        return _coco(path, data)
    raise TruthError(f"{path}: ground truth not found (a folder per class, or a COCO JSON file)")


def _class_folders(root: Path) -> Truth:
    items = []
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError as exc:
        raise TruthError(f"{root}: cannot list the class folders: {exc.strerror}") from None
    for folder in folders:
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                items.append(TruthItem(f, label=folder.name))
    if not items:
        raise TruthError(
            f"{root}: no images in class folders (expected {root}/<label>/<image>.png ...)"
        )
    if len(items) > MAX_ITEMS:
        raise TruthError(f"{root}: more than {MAX_ITEMS} images")
    return Truth("classes", root, items)


def _coco(path: Path, data: Path | None) -> Truth:
    try:
        if path.stat().st_size > MAX_TRUTH_BYTES:
            raise TruthError(f"{path}: larger than {MAX_TRUTH_BYTES // (1 << 20)} MiB")
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TruthError(f"{path}: not readable COCO JSON: {exc}") from None
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise TruthError(f"{path}: COCO JSON needs lists 'images', 'annotations', 'categories'")
    folder = data if data is not None and data.is_dir() else path.parent
    items = []
    ids = set()
    for n, img in enumerate(doc["images"]):
        if not isinstance(img, dict) or not isinstance(img.get("id"), int) or not isinstance(
            img.get("file_name"), str
        ):
            raise TruthError(f"{path}: images[{n}] needs an integer 'id' and a 'file_name'")
        f = folder / img["file_name"]
        if not f.is_file():
            raise TruthError(f"{path}: images[{n}] {img['file_name']!r} not found in {folder}")
        ids.add(img["id"])
        items.append(TruthItem(f, image_id=img["id"]))
    for n, ann in enumerate(doc["annotations"]):
        box = ann.get("bbox") if isinstance(ann, dict) else None
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) for v in box)
            or ann.get("image_id") not in ids
            or not isinstance(ann.get("category_id"), int)
        ):
            raise TruthError(
                f"{path}: annotations[{n}] needs 'image_id' of a listed image, an integer "
                "'category_id' and 'bbox' [x, y, width, height]"
            )
        ann.setdefault("id", n + 1)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(box[2]) * float(box[3]))
    for n, cat in enumerate(doc["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(
            cat.get("name"), str
        ):
            raise TruthError(f"{path}: categories[{n}] needs an integer 'id' and a 'name'")
    if not items:
        raise TruthError(f"{path}: no images listed")
    return Truth("coco", path, items, coco=doc)


# -- accuracy -----------------------------------------------------------------------------
def class_label_ids(truth: Truth, labels: Sequence[str]) -> dict[str, int]:
    """Folder name -> class id: by the model's label names, else folder names are ids."""
    ids = {}
    for item in truth.items:
        name = item.label or ""
        if name in ids:
            continue
        if labels and name in labels:
            ids[name] = list(labels).index(name)
        elif name.isdigit():
            ids[name] = int(name)
        else:
            raise TruthError(
                f"{truth.where}: class folder {name!r} is neither one of the model's labels "
                f"({', '.join(labels[:10]) or 'none'}) nor a class id"
            )
    return ids


def topk_accuracy(truth: Truth, results: Sequence[Result], labels: Sequence[str]) -> dict[str, Any]:
    ids = class_label_ids(truth, labels)
    top1 = top5 = 0
    for item, res in zip(truth.items, results, strict=True):
        want = ids[item.label or ""]
        got = [c.class_id for c in res.classes]
        top1 += int(bool(got) and got[0] == want)
        top5 += int(want in got[:5])
    n = len(results)
    return {"top1": round(100.0 * top1 / n, 3), "top5": round(100.0 * top5 / n, 3), "images": n}


def coco_map(truth: Truth, results: Sequence[Result]) -> dict[str, Any]:
    """mAP@0.5 and mAP@[.5:.95] (pycocotools' COCOeval, bbox) of ``results`` (one per truth
    image, in order). Detections are matched to categories by label name."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise TruthError(
            f"pycocotools is needed for COCO ground truth ({exc}); {pip_hint('modelops')}"
        ) from None
    assert truth.coco is not None
    cats = {c["name"]: c["id"] for c in truth.coco["categories"]}
    dets = []
    unknown: set[str] = set()
    for item, res in zip(truth.items, results, strict=True):
        for d in res.detections:
            if d.label not in cats:
                unknown.add(d.label)
                continue
            x1, y1, x2, y2 = d.box
            dets.append({"image_id": item.image_id, "category_id": cats[d.label],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(d.score)})
    out: dict[str, Any] = {"images": len(results), "detections": len(dets)}
    if unknown:
        out["labels_not_in_truth"] = sorted(unknown)[:20]
    if not dets:
        out.update({"map50": 0.0, "map50_95": 0.0})
        return out
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = json.loads(json.dumps(truth.coco))
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = [i.image_id for i in truth.items]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out.update({"map50": round(100.0 * max(float(ev.stats[1]), 0.0), 3),
                "map50_95": round(100.0 * max(float(ev.stats[0]), 0.0), 3)})
    return out
