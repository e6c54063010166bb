"""Overhead of edge-agent's Model over a bare interpreter loop (issue 2).

Same file, same backend, same thread count. Each pair is one block of invokes through a bare
``Interpreter`` and one through :class:`edge_agent.inference.Model` (in alternating order),
so machine noise hits both alike; the per-pair ratio is median(Model) / median(bare), and the
script prints the median of those ratios. Target: within 3 % (ratio <= 1.03).

Also measures the whole Runner (preprocess a real photo + invoke + decode) next to the bare
invoke, to show where a frame's time goes.

    python3 benchmarks/model_overhead.py [--model models/mobilenet_v2_int8.tflite]
        [--pairs 30] [--block 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.inference import Model, Runner, read_image  # noqa: E402
from edge_agent.inference.bench import bare_interpreter  # noqa: E402


def _block(fn: Callable[[], object], n: int) -> list[float]:
    clock = time.perf_counter
    out = []
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "mobilenet_v2_int8.tflite")
    ap.add_argument("--image", type=Path, default=ROOT / "tests" / "data" / "astronaut.jpg")
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--block", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    model = Model(a.model, threads=a.threads)
    model.warmup(10)
    bare = bare_interpreter(model)
    for _ in range(10):
        bare.invoke()
    ratios, model_med, bare_med = [], [], []
    for i in range(a.pairs):
        first, second = (bare.invoke, model.invoke) if i % 2 == 0 else (model.invoke, bare.invoke)
        t_first = _block(first, a.block)
        t_second = _block(second, a.block)
        t_bare, t_model = (t_first, t_second) if i % 2 == 0 else (t_second, t_first)
        mb, mm = statistics.median(t_bare), statistics.median(t_model)
        bare_med.append(mb)
        model_med.append(mm)
        ratios.append(mm / mb)
    print(f"model {a.model.name}  backend {model.backend.label}  delegate {model.delegate}  "
          f"threads {a.threads}  pairs {a.pairs} x {a.block} invokes")
    print(f"  bare interpreter invoke  median {statistics.median(bare_med) * 1e3:.3f} ms")
    print(f"  edge-agent Model.invoke  median {statistics.median(model_med) * 1e3:.3f} ms")
    ratio = statistics.median(ratios)
    verdict = "within 3 %" if ratio <= 1.03 else "OVER 3 %"
    print(f"  median ratio Model/bare  {ratio:.4f}  ({(ratio - 1) * 100:+.2f} %, {verdict})")

    if a.image.is_file():
        runner = Runner(model, Runner.open(a.model, warmup=0).description)
        frame = read_image(a.image)
        stages: dict[str, list[float]] = {"preprocess": [], "invoke": [], "postprocess": []}
        for _ in range(a.pairs * 2):
            _, t = runner.run(frame)
            stages["preprocess"].append(t.preprocess)
            stages["invoke"].append(t.invoke)
            stages["postprocess"].append(t.postprocess)
        parts = "  ".join(f"{k} {statistics.median(v) * 1e3:.3f} ms" for k, v in stages.items())
        print(f"  Runner.run on {a.image.name} ({frame.shape[1]}x{frame.shape[0]}): {parts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
