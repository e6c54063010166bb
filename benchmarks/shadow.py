"""Shadow evaluation's cost to the active pipeline: its fps with a shadow candidate running
beside it, divided by its fps without one (goal >= 0.9 at the default budget).

    python3 benchmarks/shadow.py [--rounds 5] [--frames 300] [--budget 0.25] [--sample 0.5]

The active model is the shipped float face detector at full speed (policy ``all`` over an
on-demand synthetic 640x480 camera: the pipeline never waits for frames, so any CPU or GIL the
shadow takes shows as lost fps; ``--fps 30`` paces the camera like a live one instead); the
candidate is its int8 version on its own interpreter (one thread, nice +10) fed by the same
results, with the manifest defaults unless given.
Rounds alternate without / with, so load drifts hit both; medians and their ratio printed,
and the shadow's own figures (frames compared, skipped over budget, agreement).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.agent.pipeline import Pipeline, tune_process
from edge_agent.camera import CameraReader, LatestFrameSlot
from edge_agent.camera.sources import SyntheticSource
from edge_agent.inference import Runner
from edge_agent.updates.manifest import Shadow
from edge_agent.updates.shadow import ShadowRun

MODELS = Path(__file__).resolve().parents[1] / "models"
ACTIVE = MODELS / "blazeface_float32.tflite"
CANDIDATE = MODELS / "blazeface_int8.tflite"


def one(frames: int, policy: Shadow | None, fps: float | None) -> tuple[
    float, dict[str, Any] | None
]:
    run = ShadowRun(Runner.open(CANDIDATE), policy).start() if policy else None
    source = SyntheticSource(640, 480, fps=fps)
    reader = CameraReader(source, LatestFrameSlot("all", on_demand=fps is None))
    sinks = [run.on_result] if run else []
    p = Pipeline(lambda: Runner.open(ACTIVE), reader, limit=frames, sinks=sinks)
    t0 = time.perf_counter()
    p.start()
    p.done.wait(600)
    dt = time.perf_counter() - t0
    p.stop()
    fig = None
    if run is not None:
        fig = run.figures().to_json()
        run.close()
    return p.counters()["processed"] / dt, fig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--budget", type=float, default=Shadow().cpu_budget)
    ap.add_argument("--sample", type=float, default=Shadow().sample_rate)
    ap.add_argument("--fps", type=float, default=0.0,
                    help="camera rate (0: as fast as the pipeline takes frames)")
    a = ap.parse_args()
    fps = a.fps or None
    restore = tune_process()
    policy = Shadow(cpu_budget=a.budget, sample_rate=a.sample, min_frames=100_000)
    without: list[float] = []
    with_: list[float] = []
    figs: list[dict[str, Any]] = []
    one(50, policy, fps)  # warm caches and the import of everything
    for _ in range(a.rounds):
        without.append(one(a.frames, None, fps)[0])
        rate, fig = one(a.frames, policy, fps)
        with_.append(rate)
        assert fig is not None
        figs.append(fig)
    restore()
    m0, m1 = statistics.median(without), statistics.median(with_)
    for label, m, xs in (("without", m0, without), ("with   ", m1, with_)):
        print(f"active fps {label} shadow  median {m:7.1f}  "
              f"({', '.join(f'{x:.0f}' for x in xs)})")
    print(f"ratio with/without         {m1 / m0:.3f}   (goal >= 0.9; budget {a.budget:g} of a "
          f"core, sample rate {a.sample:g})")
    frames = statistics.median(f["frames"] for f in figs)
    skipped = statistics.median(f["skipped"] for f in figs)
    sampled = statistics.median(f["sampled"] for f in figs)
    agree = statistics.median(f["agreement"] or 0.0 for f in figs)
    print(f"shadow per round (median): {frames:.0f} frames compared, {skipped:.0f} of "
          f"{sampled:.0f} sampled skipped (busy or over budget), agreement {agree:.3f}")


if __name__ == "__main__":
    main()
