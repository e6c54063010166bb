#!/usr/bin/env python3
"""Pipeline benchmark (issue #3): the agent's pipeline against the raw interpreter and a naive
loop, side by side, medians of several rounds; then a real ``edge-agent run`` subprocess for
RSS and process-start-to-first-result.

    python3 benchmarks/pipeline.py [--runs 5] [--frames 300] [--model M.tflite] [--json]

Input: a 640x480 MJPG video generated into a temporary directory (a pan/zoom over
scikit-image's astronaut photo when scikit-image is installed, else the synthetic pattern).
Targets (printed, never asserted): pipeline/raw >= 0.95, pipeline/naive >= 1.15,
e2e_p50 - invoke_p50 <= 2 ms, RSS <= 150 MB, process start -> first result <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.camera.clips import pan_zoom_frames, synthetic_frames, write_clip  # noqa: E402
from edge_agent.tools.bench_pipeline import bench_pipeline  # noqa: E402


def make_clip(path: Path, n: int) -> str:
    try:
        import cv2
        from skimage import data

        photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        write_clip(path, pan_zoom_frames(photo, n), fps=30, fourcc="MJPG")
        return "astronaut pan/zoom"
    except ImportError:
        write_clip(path, synthetic_frames(n), fps=30, fourcc="MJPG")
        return "synthetic pattern"


def agent_run(model: Path, clip: Path, tmp: Path, frames: int) -> tuple[float, float | None]:
    """Peak RSS (MB) of a real `edge-agent run` and process start -> first result (s), timed
    from outside: from just before the process is spawned to its first JSON result line."""
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f'[device]\nstate_dir = "{tmp / "state"}"\n'
        f'[model]\npath = "{model}"\n'
        f'[camera]\nsource = "{clip}"\npolicy = "all"\nloop = true\n'
        "[metrics]\ninterval_s = 1.0\n[pipeline]\nstdout_jsonl = true\n",
        encoding="utf-8",
    )
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "-c", str(cfg), "--frames", str(frames)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    to_first = time.monotonic() - t0 if first.startswith("{") else None
    peak = 0.0
    ps = psutil.Process(proc.pid)
    for _line in proc.stdout:  # keep the pipe drained while sampling memory
        try:
            peak = max(peak, ps.memory_info().rss / 2**20)
        except psutil.Error:
            break
    proc.wait()
    return peak, to_first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "mobilenet_v2_int8.tflite")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        clip = tmp / "bench_640x480.avi"
        content = make_clip(clip, args.frames)
        rounds = []
        for i in range(max(args.runs, 1)):
            r = bench_pipeline(str(args.model), str(clip), threads=args.threads, frames=args.frames)
            rounds.append(r.to_json())
            j = rounds[-1]
            print(
                f"run {i + 1}: raw {j['raw_fps']:.1f} naive {j['naive_fps']:.1f} pipeline "
                f"{j['pipeline_fps']:.1f} fps | e2e p50 {j['e2e_p50_ms']:.2f} invoke p50 "
                f"{j['invoke_p50_ms']:.2f} (bare {j['raw_invoke_p50_ms']:.2f}) ms | "
                f"busy {j['invoke_busy']:.3f}",
                file=sys.stderr,
            )
        rss_runs, first_runs = [], []
        for _ in range(3):
            rss, first = agent_run(args.model, clip, tmp, args.frames)
            rss_runs.append(rss)
            if first is not None:
                first_runs.append(first)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    def ratio_med(a: str, b: str) -> float:  # median of per-round ratios (side by side)
        return statistics.median(r[a] / r[b] for r in rounds)

    summary = {
        "model": args.model.name,
        "clip": f"640x480 MJPG, {args.frames} frames, {content}",
        "runs": len(rounds),
        "threads": args.threads,
        "raw_fps": med("raw_fps"),
        "naive_fps": med("naive_fps"),
        "pipeline_fps": med("pipeline_fps"),
        "pipeline_over_raw": ratio_med("pipeline_fps", "raw_fps"),
        "pipeline_over_naive": ratio_med("pipeline_fps", "naive_fps"),
        "naive_over_raw": ratio_med("naive_fps", "raw_fps"),
        "e2e_p50_ms": med("e2e_p50_ms"),
        "invoke_p50_ms": med("invoke_p50_ms"),
        "e2e_minus_invoke_p50_ms": statistics.median(
            r["e2e_p50_ms"] - r["invoke_p50_ms"] for r in rounds
        ),
        "invoke_busy": med("invoke_busy"),
        "invoke_starved": med("invoke_starved"),
        "invoke_slowdown": statistics.median(
            r["invoke_p50_ms"] / r["raw_invoke_p50_ms"] for r in rounds
        ),
        "agent_rss_mb": statistics.median(rss_runs),
        "start_to_first_result_s": statistics.median(first_runs) if first_runs else None,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    s = summary
    print(f"model {s['model']}, {s['clip']}, {s['runs']} runs, {s['threads']} thread(s), medians")
    print(
        f"  fps: raw {s['raw_fps']:.1f}  naive {s['naive_fps']:.1f}  "
        f"pipeline {s['pipeline_fps']:.1f}"
    )
    print(f"  pipeline/raw   {s['pipeline_over_raw']:.3f}  (target >= 0.95)")
    print(
        f"    interpreter busy {s['invoke_busy']:.3f} of the time, waiting for input "
        f"{s['invoke_starved']:.3f}, handover {1 - s['invoke_busy'] - s['invoke_starved']:.3f}; "
        f"invoke p50 {s['invoke_slowdown']:.2f}x the bare loop's (other stages beside it)"
    )
    print(
        f"  pipeline/naive {s['pipeline_over_naive']:.3f}  (target >= 1.15; "
        f"naive/raw {s['naive_over_raw']:.3f})"
    )
    print(
        f"  e2e p50 - invoke p50 {s['e2e_minus_invoke_p50_ms']:.2f} ms  (target <= 2; e2e p50 "
        f"{s['e2e_p50_ms']:.2f}, invoke p50 {s['invoke_p50_ms']:.2f})"
    )
    print(f"  agent RSS {s['agent_rss_mb']:.0f} MB  (target <= 150)")
    first = s["start_to_first_result_s"]
    shown = "-" if first is None else f"{first:.2f}"
    print(f"  process start -> first result {shown} s  (target <= 1)")


if __name__ == "__main__":
    main()
