"""Model update benchmark: push -> committed for a ~4 MB model over loopback, frames dropped at
the swap, and the pipeline's pause at the swap.

    python3 benchmarks/update.py [--runs 3] [--fps 30]

One run, side by side (medians over ``--runs`` pushes of MobileNetV2 int8, 3.9 MB):
- push -> committed (MQTT command, download from nginx, checks, preflight subprocess, swap,
  trial of 30 inferences), next to its parts measured alone: the download of the same file
  with the same fetcher, and the preflight subprocess;
- frames dropped by the swap (the pipeline's ``dropped_by["swap"]``), and all drops in the
  0.5 s after the swap against a quiet 0.5 s before the update;
- the pause at the swap: the longest gap between two results in the second around the swap,
  against the longest gap in a quiet second before the update and the median gap (one frame
  interval at the camera rate).
The agent runs in this process (real pipeline, MQTT and update components, synthetic camera);
nginx and mosquitto are started on free ports and stopped at the end.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.app import build_agent
from edge_agent.config import parse_config
from edge_agent.mqtt.link import LinkSettings
from edge_agent.mqtt.testing import Mosquitto
from edge_agent.updates.fetch import Fetcher
from edge_agent.updates.manifest import parse_manifest
from edge_agent.updates.preflight import run_preflight
from edge_agent.updates.publish import publish
from edge_agent.updates.push import push_update
from tests.support.updates import new_key, nginx, seed_store

MODEL = Path(__file__).resolve().parents[1] / "models" / "mobilenet_v2_int8.tflite"


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fps", type=float, default=30.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        key, pub = new_key(tmp)
        reg = tmp / "registry"
        for i in range(a.runs + 1):
            publish(MODEL, name="mobilenet", version=f"{i + 1}.0", key=key, to=reg, seq=i + 1)
        broker = Mosquitto(tmp / "broker").start()
        try:
            with nginx(reg, tmp / "nginx") as server:
                seed_store(tmp / "state", server.http_url, pub, "mobilenet", "1.0",
                           [1, 224, 224, 3])
                bench(a, tmp, pub, server.http_url, broker.port, reg)
        finally:
            broker.stop()


def bench(a: Any, tmp: Path, pub: Path, url: str, port: int, reg: Path) -> None:
    cfg = parse_config({
        "device": {"id": "bench", "state_dir": str(tmp / "state")},
        "camera": {"source": "synthetic", "width": 640, "height": 480, "fps": a.fps},
        "metrics": {"interval_s": 1.0},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": port},
        "updates": {"trusted_keys": [str(pub)], "registry": url, "trial_inferences": 30,
                    "trial_seconds": 30},
    })
    agent = build_agent(cfg)
    pipeline = agent.pipeline
    assert pipeline is not None
    results: list[float] = []
    swaps: list[float] = []
    pipeline.add_sink(lambda fr: results.append(time.monotonic()))
    real_swap = pipeline.swap

    at_swap: list[dict[str, Any]] = []

    def timed_swap(runner: Any) -> Any:
        at_swap.append(pipeline.counters())
        t = time.monotonic()
        out = real_swap(runner)
        swaps.append(t)
        return out

    pipeline.swap = timed_swap  # type: ignore[method-assign]
    report: dict[str, list[float]] = {k: [] for k in (
        "push_s", "download_s", "preflight_s", "swap_drops", "drops_around", "drops_quiet",
        "pause_ms", "gap_ms", "quiet_max_ms")}

    def driver() -> None:
        try:
            time.sleep(3.0)  # steady state
            settings = LinkSettings(host="127.0.0.1", port=port, client_id="bench-central")
            for i in range(a.runs):
                version = f"{i + 2}.0"
                before = pipeline.counters()
                t_quiet = time.monotonic()
                time.sleep(1.0)
                quiet = pipeline.counters()
                t0 = time.monotonic()
                res = push_update(
                    settings, cmd_topic="edge/bench/cmd/update",
                    reply_filter="edge/bench/cmd/update/reply", update_filter="edge/bench/update",
                    params={"model": "mobilenet", "version": version}, group=False,
                    timeout=120, on_record=lambda d, r: None)
                t1 = time.monotonic()
                assert res.ok, (res.final, res.refused)
                ts = swaps[-1]
                time.sleep(max(0.0, ts + 0.5 - time.monotonic()))
                after = pipeline.counters()  # 0.5 s after the swap (trial done by then)
                report["push_s"].append(t1 - t0)
                report["swap_drops"].append(after["dropped_by"]["swap"]
                                            - before["dropped_by"]["swap"])
                report["drops_quiet"].append(quiet["dropped"] - before["dropped"])
                around = [t for t in results if ts - 0.5 <= t <= ts + 0.5]
                report["drops_around"].append(after["dropped"] - at_swap[-1]["dropped"])
                gaps = [b - c for c, b in itertools.pairwise(around)]
                quiet_r = [t for t in results if t_quiet <= t <= t_quiet + 1.0]
                quiet_gaps = [b - c for c, b in itertools.pairwise(quiet_r)]
                report["gap_ms"].append(1000 * med(quiet_gaps))
                report["quiet_max_ms"].append(1000 * max(quiet_gaps))
                report["pause_ms"].append(1000 * max(gaps) if gaps else float("nan"))
                # the parts alone, same machine, same moment
                d = reg / "mobilenet" / version
                m = parse_manifest((d / "manifest.json").read_bytes(), "bench")
                f = m.model_file
                t2 = time.monotonic()
                Fetcher().download(f"{url}/mobilenet/{version}/{f.name}", tmp / f"dl{i}.part",
                                   size=f.size, sha256=f.sha256)
                t3 = time.monotonic()
                run_preflight(d, timeout_s=60)
                t4 = time.monotonic()
                report["download_s"].append(t3 - t2)
                report["preflight_s"].append(t4 - t3)
        finally:
            agent.request_stop("benchmark done")

    th = threading.Thread(target=driver, daemon=True)
    th.start()
    agent.run()
    th.join(5)
    size_mb = MODEL.stat().st_size / 1e6
    push, dl, pf = med(report["push_s"]), med(report["download_s"]), med(report["preflight_s"])
    print(f"model {MODEL.name} {size_mb:.1f} MB, camera {a.fps:g} fps, {a.runs} pushes (medians)")
    print(f"push -> committed     {push:6.2f} s")
    print(f"  download alone      {dl:6.3f} s  ({dl / push:.1%} of push; "
          f"{size_mb / dl:.0f} MB/s over loopback)")
    print(f"  preflight alone     {pf:6.2f} s  ({pf / push:.1%} of push)")
    print(f"  rest (MQTT, checks, load+warm, trial 30 inferences) {push - dl - pf:5.2f} s")
    print(f"frames dropped by the swap       {med(report['swap_drops']):.0f} (goal 0)")
    print(f"frames dropped (any reason) in the 0.5 s after the swap "
          f"{med(report['drops_around']):.0f} vs {med(report['drops_quiet']):.0f} in a quiet "
          "1 s before the update")
    gap, pause, quiet = med(report["gap_ms"]), med(report["pause_ms"]), med(report["quiet_max_ms"])
    print(f"pause at the swap: longest gap between results in the 1 s around it {pause:.1f} ms "
          f"vs {quiet:.1f} ms in a quiet 1 s before ({pause / quiet:.2f}x); median gap "
          f"{gap:.1f} ms, so the swap adds {pause - gap:.1f} ms = {(pause - gap) / gap:.2f} "
          "frame interval (goal < 1)")


if __name__ == "__main__":
    main()
