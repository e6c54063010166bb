"""``models compare A B``: the same frames through both models, side by side.

- What it costs: size on disk, load time, invoke latency (p50/p95, A and B interleaved in
  blocks in one run so machine noise hits both alike), peak RSS (each in its own process).
- How far B agrees with A (the reference): every output tensor (cosine, max abs error), and
  the task through the decoders (:mod:`edge_agent.inference.agreement`).
- Against ground truth when given: top-1/top-5 (a folder per class) or mAP@0.5 (COCO JSON,
  pycocotools).
- The model owner's line: ``blazeface_int8: -0.4 points mAP@0.5, 3.1x faster, 3.8x smaller``.

The frames where the two disagree most are kept (scaled down) with both results, for the HTML
report. Models that do not take the same input or do not use the same decoder are refused.
"""

from __future__ import annotations

import heapq
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NotComparableError
from ..inference.agreement import AgreementTally, FrameAgreement, TensorTally, compare_results
from ..inference.result import Result
from . import rss
from .frames import FrameFeed
from .truth import Truth, coco_map, load_truth, topk_accuracy

SCHEMA = 1
DEFAULT_FRAMES = 100
DEFAULT_RUNS = 200
KEEP_FRAMES = 6
THUMB_PX = 480
EVAL_THRESHOLD = 0.05  # detections kept for mAP (the whole precision/recall curve)
BLOCK = 10
LOAD_REPEATS = 3

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CompareOptions:
    frames: int | None = None  # None: DEFAULT_FRAMES of a source, every image of a truth set
    threads: int = 1
    runs: int = DEFAULT_RUNS
    keep: int = KEEP_FRAMES
    rss: bool = True


@dataclass
class KeptFrame:
    """A frame where A and B disagree, scaled to at most THUMB_PX (results scaled with it)."""

    index: int
    name: str
    disagreement: float
    image: np.ndarray
    a: Result
    b: Result


@dataclass
class Side:
    """One model of the comparison, loaded for this run."""

    path: Path
    runner: Any
    eval_decoder: Any
    load_ms: list[float]
    invoke_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    rss: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        m = self.runner.model
        return {
            "path": str(self.path),
            "name": self.path.stem,
            "sha256": m.sha256,
            "size": m.size,
            "backend": m.backend.label,
            "delegate": m.delegate,
            "inputs": [t.to_json() for t in m.inputs],
            "outputs": [t.to_json() for t in m.outputs],
            "load_ms": round(statistics.median(self.load_ms), 3),
            "invoke_p50_ms": _pct(self.invoke_ms, 50),
            "invoke_p95_ms": _pct(self.invoke_ms, 95),
            "invoke_mean_ms": round(float(np.mean(self.invoke_ms)), 4) if self.invoke_ms else None,
            "e2e_p50_ms": _pct(self.e2e_ms, 50),
            "peak_rss_kb": self.rss.get("peak_kb"),
            "model_rss_kb": self.rss.get("model_kb"),
            **({"rss_error": self.rss["error"]} if "error" in self.rss else {}),
        }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


@dataclass
class Comparison:
    a: Side
    b: Side
    source: str
    threads: int
    runs: int
    agreement: AgreementTally
    tensors: TensorTally
    accuracy: dict[str, Any] | None
    kept: list[KeptFrame]
    skipped: list[str]

    def ratios(self) -> dict[str, float | None]:
        a, b = self.a.to_json(), self.b.to_json()

        def ratio(key: str) -> float | None:
            if not a.get(key) or not b.get(key):
                return None
            return round(float(a[key]) / float(b[key]), 3)

        return {
            "size": ratio("size"),
            "speed_p50": ratio("invoke_p50_ms"),
            "speed_p95": ratio("invoke_p95_ms"),
            "load": ratio("load_ms"),
            "model_rss": ratio("model_rss_kb"),
        }

    def summary_line(self) -> str:
        return summary_line(self.b.path.stem, self.accuracy, self.agreement.summary(),
                            self.ratios())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "summary": self.summary_line(),
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "ratios": self.ratios(),
            "source": self.source,
            "frames": self.agreement.frames,
            "skipped_frames": self.skipped[:20],
            "threads": self.threads,
            "runs": self.runs,
            "agreement": self.agreement.summary(),
            "tensors": self.tensors.summary(),
            "accuracy": self.accuracy,
            "disagreeing_frames": [
                {"index": k.index, "name": k.name, "disagreement": round(k.disagreement, 4),
                 "a": k.a.to_json(), "b": k.b.to_json()}
                for k in self.kept
            ],
        }


def _times(ratio: float | None, fast: str, slow: str) -> str | None:
    if ratio is None:
        return None
    if ratio >= 1.0:
        return f"{ratio:.1f}x {fast}"
    return f"{1.0 / ratio:.1f}x {slow}"


def summary_line(
    name: str,
    accuracy: dict[str, Any] | None,
    agreement: dict[str, Any],
    ratios: dict[str, float | None],
) -> str:
    """``NAME: -0.4 points top-1, 3.1x faster, 3.8x smaller`` — how a model owner reads it.
    Without ground truth the quality part is the agreement with A (recall / top-1)."""
    parts = []
    if accuracy is not None:
        parts.append(f"{accuracy['delta_points']:+.1f} points {accuracy['metric']}")
    elif agreement.get("kind") == "detection":
        parts.append(f"recall {agreement['recall']:.2f} / precision {agreement['precision']:.2f}"
                     " of A's detections")
    elif agreement.get("kind") == "classification":
        parts.append(f"top-1 agrees with A on {100 * agreement['top1_agreement']:.1f} %")
    for text in (_times(ratios.get("speed_p50"), "faster", "slower"),
                 _times(ratios.get("size"), "smaller", "larger")):
        if text:
            parts.append(text)
    return f"{name}: " + ", ".join(parts)


# -- refusing what cannot be compared ------------------------------------------------------
def check_comparable(a: Any, b: Any) -> None:
    """Both runners must take the same image and read it with the same decoder."""
    ia, ib = a.model.inputs[0], b.model.inputs[0]
    da, db = a.description, b.description
    if tuple(ia.shape) != tuple(ib.shape):
        raise NotComparableError(
            f"{a.model.path.name} takes {list(ia.shape)} but {b.model.path.name} takes "
            f"{list(ib.shape)}; compare needs two models with the same input"
        )
    diffs = [f"{key} {getattr(da, key)} vs {getattr(db, key)}" for key in ("color", "resize")
             if getattr(da, key) != getattr(db, key)]
    if diffs:
        raise NotComparableError(
            f"{a.model.path.name} and {b.model.path.name} prepare their input differently ("
            + ", ".join(diffs) + "); compare needs the same input convention"
        )
    if da.decoder.name != db.decoder.name:
        raise NotComparableError(
            f"{a.model.path.name} uses decoder {da.decoder.name!r} but {b.model.path.name} "
            f"uses {db.decoder.name!r}; compare needs the same decoder on both"
        )
    if da.decoder.labels != db.decoder.labels:
        raise NotComparableError(
            f"{a.model.path.name} and {b.model.path.name} have different labels; compare "
            "needs the same classes"
        )


# -- the run --------------------------------------------------------------------------------
def _open(path: Path, threads: int, description: Any) -> Side:
    from ..inference import Model, Runner, get_decoder, load_description

    loads = []
    model = None
    for _ in range(LOAD_REPEATS):
        t0 = time.perf_counter()
        model = Model(path, threads=threads)
        loads.append((time.perf_counter() - t0) * 1000.0)
    assert model is not None
    desc = description or load_description(path, model=model)
    if desc.decoder.name == "classification":  # top-5 needs 5 classes, every score
        desc = desc.with_overrides(threshold=0.0, top_k=max(5, desc.decoder.top_k))
    runner = Runner(model, desc)
    eval_decoder = get_decoder(desc.with_overrides(threshold=min(EVAL_THRESHOLD,
                                                                desc.decoder.threshold)), model)
    model.warmup(2)
    return Side(path, runner, eval_decoder, loads)


def _step(side: Side, frame: np.ndarray) -> tuple[Result, Result, list[np.ndarray]]:
    """Preprocess -> invoke -> decode at the operating threshold and at the eval threshold."""
    r = side.runner
    t0 = time.perf_counter()
    view = r.model.input_view(0)
    transform = r.preprocessor.run(frame, view)
    del view
    r.model.invoke()
    raw = r.model.outputs_all()
    result = r.decoder.decode(raw, transform)
    side.e2e_ms.append((time.perf_counter() - t0) * 1000.0)
    full = side.eval_decoder.decode(raw, transform)
    real = [spec.dequantize(x) for spec, x in zip(r.model.outputs, raw, strict=True)]
    return result, full, real


def _scaled(frame: np.ndarray, res: Result) -> tuple[np.ndarray, Result]:
    import cv2

    h, w = frame.shape[:2]
    s = min(1.0, THUMB_PX / max(h, w))
    if s >= 1.0:
        return frame.copy(), res
    img = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))),
                     interpolation=cv2.INTER_AREA)
    return img, res.scaled(s)


def _frames(source: str | None, truth: Truth | None, limit: int | None,
            skipped: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    if truth is not None:
        import cv2

        from ..errors import TruthError

        for item in truth.items:
            img = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
            if img is None:
                raise TruthError(f"{item.path}: not a decodable image (listed in the truth)")
            yield item.path.name, img
        return
    assert source is not None
    feed = FrameFeed(source, limit or DEFAULT_FRAMES, skipped)
    for n, img in enumerate(feed):
        yield f"frame {n}", img


def _interleaved_invokes(a: Side, b: Side, runs: int) -> None:
    clock = time.perf_counter
    for side in (a, b):
        side.runner.model.warmup(3)
    while len(a.invoke_ms) < runs:
        n = min(BLOCK, runs - len(a.invoke_ms))
        for side in (a, b):
            invoke = side.runner.model.invoke
            for _ in range(n):
                t0 = clock()
                invoke()
                side.invoke_ms.append((clock() - t0) * 1000.0)


def compare_models(
    path_a: Path,
    path_b: Path,
    *,
    source: str | None,
    truth_path: Path | None = None,
    options: CompareOptions | None = None,
    progress: Progress | None = None,
    descriptions: tuple[Any, Any] = (None, None),
) -> Comparison:
    opts = options or CompareOptions()
    a = _open(path_a, opts.threads, descriptions[0])
    b = _open(path_b, opts.threads, descriptions[1])
    check_comparable(a.runner, b.runner)
    truth = None
    if truth_path is not None:
        truth = load_truth(truth_path, Path(source) if source else None)
        if opts.frames:
            truth.items = truth.items[: opts.frames]
        wants = "classification" if truth.kind == "classes" else "detection"
        kind = {"blazeface": "detection", "ssd": "detection", "yolo": "detection"}.get(
            a.runner.description.decoder.name, a.runner.description.decoder.name)
        if kind != wants:
            from ..errors import TruthError

            raise TruthError(
                f"{truth_path}: {'a folder per class' if wants == 'classification' else 'COCO'}"
                f" ground truth is for {wants} models; these use decoder "
                f"{a.runner.description.decoder.name!r}"
            )
    elif source is None:
        from ..errors import SourceError

        raise SourceError("no frames to compare on: give --data SOURCE (or --truth)")

    kind = None
    tally: AgreementTally | None = None
    tensors = TensorTally([t.name for t in a.runner.model.outputs])
    same_shapes = [tuple(x.shape) for x in a.runner.model.outputs] == [
        tuple(x.shape) for x in b.runner.model.outputs]
    kept: list[tuple[float, int, KeptFrame]] = []
    full_a: list[Result] = []
    full_b: list[Result] = []
    skipped: list[str] = []
    total = opts.frames or (len(truth.items) if truth else DEFAULT_FRAMES)
    for n, (name, frame) in enumerate(_frames(source, truth, opts.frames, skipped)):
        ra, fa, xa = _step(a, frame)
        rb, fb, xb = _step(b, frame)
        if tally is None:
            kind = ra.kind
            tally = AgreementTally(kind)
        agree: FrameAgreement = compare_results(ra, rb)
        tally.add(agree)
        if same_shapes:
            tensors.add(xa, xb)
        if truth is not None:
            full_a.append(fa)
            full_b.append(fb)
        score = agree.disagreement()
        if opts.keep and score > 0:
            entry = (score, -n, _keep(n, name, score, frame, ra, rb))
            if len(kept) < opts.keep:
                heapq.heappush(kept, entry)
            elif entry[:2] > kept[0][:2]:
                heapq.heapreplace(kept, entry)
        if progress is not None:
            progress(n + 1, total)
    assert tally is not None and kind is not None
    _interleaved_invokes(a, b, max(1, opts.runs))
    if opts.rss:
        a.rss = rss.measure(path_a, opts.threads)
        b.rss = rss.measure(path_b, opts.threads)
    accuracy = None
    if truth is not None:
        accuracy = _accuracy(truth, full_a, full_b, a.runner.description.decoder.labels)
    return Comparison(
        a=a, b=b, source=source or str(truth_path), threads=opts.threads, runs=max(1, opts.runs),
        agreement=tally, tensors=tensors, accuracy=accuracy,
        kept=[e[2] for e in sorted(kept, key=lambda e: (-e[0], -e[1]))], skipped=skipped,
    )


def _keep(n: int, name: str, score: float, frame: np.ndarray, ra: Result,
          rb: Result) -> KeptFrame:
    img, sa = _scaled(frame, ra)
    _, sb = _scaled(frame, rb)
    return KeptFrame(n, name, score, img, sa, sb)


def _accuracy(truth: Truth, ra: Iterable[Result], rb: Iterable[Result],
              labels: list[str]) -> dict[str, Any]:
    ra, rb = list(ra), list(rb)
    if truth.kind == "classes":
        acc_a, acc_b = topk_accuracy(truth, ra, labels), topk_accuracy(truth, rb, labels)
        key = "top1"
    else:
        acc_a, acc_b = coco_map(truth, ra), coco_map(truth, rb)
        key = "map50"
    return {
        "metric": truth.metric,
        "truth": str(truth.where),
        "a": acc_a,
        "b": acc_b,
        "delta_points": round(acc_b[key] - acc_a[key], 3),
    }
