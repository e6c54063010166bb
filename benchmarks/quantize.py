#!/usr/bin/env python3
"""`models quantize` and `models compare` on the shipped BlazeFace and digits models: wall time
of quantising with N calibration frames, then float vs int8 side by side (interleaved invokes).

    python3 benchmarks/quantize.py [--frames 100] [--runs 300] [--json]

Prints: the quantisation wall time (prepare / calibrate / quantize), then per model pair the
owner's line, the latency/size ratios and the agreement figures. Medians, measured here on a
shared machine: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.modelops.compare import CompareOptions, compare_models  # noqa: E402
from edge_agent.modelops.quantize import QuantizeOptions, quantize_model  # noqa: E402

MODELS = ROOT / "models"


def digits_truth(folder: Path) -> Path:
    import cv2
    import numpy as np

    data = np.load(ROOT / "tests" / "data" / "digits_test.npz")
    for n, (img, label) in enumerate(zip(data["images"], data["labels"], strict=True)):
        (folder / str(int(label))).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / str(int(label)) / f"{n:03d}.png"), img)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100, help="calibration / comparison frames")
    ap.add_argument("--runs", type=int, default=300, help="timed invokes per model")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        q8 = Path(tmp) / "blazeface_q8.tflite"
        t0 = time.perf_counter()
        q = quantize_model(MODELS / "blazeface_float32.tflite", q8, "demo",
                           QuantizeOptions(frames=args.frames))
        wall = time.perf_counter() - t0
        out["quantize_blazeface"] = {"frames": q.frames, "wall_s": round(wall, 2),
                                     "seconds": {k: round(v, 2) for k, v in q.seconds.items()}}
        pairs = [
            ("blazeface (shipped int8)", MODELS / "blazeface_int8.tflite", "demo", None),
            ("blazeface (quantised from demo now)", q8, "demo", None),
            ("digits", MODELS / "digits_int8.tflite", None, digits_truth(Path(tmp) / "digits")),
        ]
        for label, b, source, truth in pairs:
            a = MODELS / ("digits_float32.tflite" if "digits" in label else
                          "blazeface_float32.tflite")
            cmp = compare_models(a, b, source=source, truth_path=truth,
                                 options=CompareOptions(frames=None if truth else args.frames,
                                                        runs=args.runs))
            doc = cmp.to_json()
            out[label] = {"summary": doc["summary"], "ratios": doc["ratios"],
                          "a_p50_ms": doc["a"]["invoke_p50_ms"],
                          "b_p50_ms": doc["b"]["invoke_p50_ms"],
                          "agreement": doc["agreement"], "accuracy": doc["accuracy"]}
    if args.json:
        print(json.dumps(out))
        return
    qb = out["quantize_blazeface"]
    assert isinstance(qb, dict)
    print(f"quantize BlazeFace, {qb['frames']} demo frames: {qb['wall_s']} s wall "
          f"({qb['seconds']})")
    for label, v in out.items():
        if label == "quantize_blazeface":
            continue
        assert isinstance(v, dict)
        print(f"{label}: {v['summary']}")
        print(f"    invoke p50 float {v['a_p50_ms']} ms, int8 {v['b_p50_ms']} ms; ratios "
              f"{v['ratios']}")
        print(f"    agreement {v['agreement']}")
        if v["accuracy"]:
            acc = v["accuracy"]
            print(f"    truth {acc['metric']}: float {acc['a']}, int8 {acc['b']}")


if __name__ == "__main__":
    main()
