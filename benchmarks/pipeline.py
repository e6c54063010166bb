#!/usr/bin/env python3
"""Pipeline benchmark (issues #3, #20): the agent's pipeline against the raw interpreter and a
naive loop, side by side, medians of interleaved rounds; CPU per frame at camera rate; RSS.

    python3 benchmarks/pipeline.py [--runs 5] [--frames 300] [--paced-runs 5] [--json]

1. Throughput (MobileNetV2 int8) at ``threads = 1`` and ``threads = cores`` on two videos made
   in a temporary directory: a cheap one (640x480 MJPG, a pan/zoom over scikit-image's
   astronaut) and a costly one to decode (the same frames as 960x540 H.264, made with ffmpeg;
   skipped, and said so, without ffmpeg). Every round runs every setting once (raw, naive and
   pipeline back to back, :func:`edge_agent.tools.bench_pipeline.bench_pipeline`); the order of
   the settings rotates between rounds; ratios are per round, then the median.
2. Camera rate (int8 BlazeFace, the shipped demo clip played at 15 and 30 fps, ``threads`` =
   ``--paced-threads``, default cores): a real ``edge-agent run`` (camera policy ``latest``, the
   default metrics interval, everything a device runs) against a paced naive loop in its own
   process (read -> the same preprocess -> invoke -> the same decode, one thread, sleeping until
   the next frame is due). CPU ms per frame = the process's CPU time (user + system) over a
   window after warm-up / the frames due in it. The agent and the naive loop run at the same
   time over the same window (each takes about a tenth of a core at 15 fps): measured one after
   the other, the same loop moved by +-10 % between windows on this shared machine, while two
   agents run side by side stayed within 1-2 % of each other. The median of the per-pair
   ratios is printed, and the agent's own e2e p50 - invoke p50 at that rate. In the same
   window run, for comparison: a second agent with ``pipeline.economy = "off"`` (always
   ``threads``; the default agent drops to one interpreter thread while the camera leaves it
   idle, :mod:`edge_agent.agent.economy`) and the naive loop on 1 thread.
3. A real ``edge-agent run`` at full speed for RSS and process-start-to-first-result.

Targets (printed, never asserted): pipeline/naive >= 1.0 at threads = cores and >= 1.15 at
threads = 1; pipeline/raw >= 0.95 at threads = 1; agent CPU/frame <= 1.05x the naive loop's at
15 and 30 fps; e2e p50 - invoke p50 <= 2 ms; RSS <= 150 MB; start -> first result <= 1 s.
The machine's load average is printed before and after: on a shared machine the absolute
figures move, the side-by-side ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.camera.clips import pan_zoom_frames, synthetic_frames, write_clip  # noqa: E402
from edge_agent.tools.bench_pipeline import bench_pipeline  # noqa: E402

MODELS = ROOT / "models"


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


def make_costly(cheap: Path, path: Path) -> bool:
    """The cheap clip's frames as 960x540 H.264 (costlier to decode); False without ffmpeg."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    subprocess.run(
        [ffmpeg, "-y", "-loglevel", "error", "-i", str(cheap), "-vf", "scale=960:540",
         "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return True


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- throughput ----------------------------------------------------------------------------
def throughput(
    model: Path, clips: dict[str, Path], threads: list[int], runs: int, frames: int,
    schedule: str,
) -> dict[str, dict[str, Any]]:
    settings = [(t, c) for t in threads for c in clips]
    rounds: dict[str, list[dict[str, Any]]] = {f"threads={t} {c}": [] for t, c in settings}
    for i in range(runs):
        k = i % len(settings)
        for t, c in settings[k:] + settings[:k]:  # rotate: no setting always runs first
            kw = {} if schedule == "none" else {"schedule": schedule}
            r = bench_pipeline(str(model), str(clips[c]), threads=t, frames=frames, **kw).to_json()
            r.setdefault("schedule", "overlap")  # a build from before the schedules
            rounds[f"threads={t} {c}"].append(r)
            print(
                f"  run {i + 1} threads={t} {c} [{r['schedule']}]: raw {r['raw_fps']:.0f} "
                f"naive {r['naive_fps']:.0f} pipeline {r['pipeline_fps']:.0f} fps | "
                f"e2e p50 {r['e2e_p50_ms']:.2f} invoke p50 {r['invoke_p50_ms']:.2f} ms",
                file=sys.stderr, flush=True,
            )
    out = {}
    for key, rs in rounds.items():
        def med(f: Any, rs: list[dict[str, Any]] = rs) -> float:
            return float(statistics.median(f(r) for r in rs))

        out[key] = {
            "schedule": rs[0]["schedule"],
            "raw_fps": med(lambda r: r["raw_fps"]),
            "naive_fps": med(lambda r: r["naive_fps"]),
            "pipeline_fps": med(lambda r: r["pipeline_fps"]),
            "pipeline_over_naive": med(lambda r: r["pipeline_fps"] / r["naive_fps"]),
            "pipeline_over_raw": med(lambda r: r["pipeline_fps"] / r["raw_fps"]),
            "e2e_minus_invoke_p50_ms": med(lambda r: r["e2e_p50_ms"] - r["invoke_p50_ms"]),
            "invoke_busy": med(lambda r: r["invoke_busy"]),
            "invoke_starved": med(lambda r: r["invoke_starved"]),
            "invoke_slowdown": med(lambda r: r["invoke_p50_ms"] / r["raw_invoke_p50_ms"]),
        }
    return out


# -- camera rate ---------------------------------------------------------------------------
NAIVE_CHILD = r"""
import sys, time
import cv2
sys.path.insert(0, sys.argv[1])
from edge_agent.agent.pipeline import tune_process
from edge_agent.inference import Runner
model, clip, fps, threads = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
tune_process()
runner = Runner.open(model, threads=threads, warmup=3)
m = runner.model
cap = cv2.VideoCapture(clip, cv2.CAP_FFMPEG)
period, due = 1.0 / fps, time.monotonic()
print("ready", flush=True)
while True:
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    due = max(due, time.monotonic() - 1.0) + period
    ok, img = cap.read()
    if not ok:
        cap.release()
        cap = cv2.VideoCapture(clip, cv2.CAP_FFMPEG)
        ok, img = cap.read()
    view = m.input_view(0)
    transform = runner.preprocessor.run(img, view)
    del view
    m.invoke()
    runner.decoder.decode(m.outputs_all(), transform)
"""


def _cpu(proc: subprocess.Popen[str]) -> float:
    if proc.poll() is not None:
        raise RuntimeError(f"benchmark child exited early ({proc.returncode})")
    t = psutil.Process(proc.pid).cpu_times()
    return float(t.user + t.system)


def _summary(out: str) -> dict[str, Any]:
    """Figures of the agent's ``run --json`` summary: the rate it kept, its e2e p50 - invoke
    p50, and the interpreter threads its economy ran on at the end."""
    try:
        s = json.loads(out)
    except json.JSONDecodeError:
        return {}
    lat = s.get("latency_ms") or {}
    eco = (s.get("pipeline") or {}).get("economy") or {}
    return {
        "kept_fps": s["counters"]["processed"] / s["seconds"],
        "e2e_minus_invoke": lat["e2e"]["p50"] - lat["invoke"]["p50"],
        "invoke_p50": lat["invoke"]["p50"],
        "threads_in_use": eco.get("threads_in_use"),
    }


AGENTS = {"agent": "auto", "agent_eco_off": "off"}  # the name of each run, its pipeline.economy


def paced_pair(
    model: Path, clip: Path, fps: float, threads: int, schedule: str, tmp: Path, warm: float,
    seconds: float, economy_ab: bool = True,
) -> dict[str, Any]:
    """Real `edge-agent run`s (economy on by default, and off) and the paced naive loop on
    ``threads`` and on 1 thread, run at the same time (each takes about a tenth of a core at
    15 fps, so they hardly meet) and measured over the same window: CPU ms per frame of each,
    and of each agent the rate it kept, its e2e p50 - invoke p50, its threads at the end."""
    agents: dict[str, subprocess.Popen[str]] = {}
    for name, economy in AGENTS.items():
        if name != "agent" and not economy_ab:
            continue
        cfg = tmp / f"paced-{fps:g}-{name}.toml"
        cfg.write_text(
            f'[device]\nstate_dir = "{tmp / ("state-" + name)}"\n'
            f'[model]\npath = "{model}"\nthreads = {threads}\n'
            f'[camera]\nsource = "{clip}"\nfps = {fps}\nloop = true\n'
            + ("" if schedule == "none" else f'[pipeline]\nschedule = "{schedule}"\n')
            + ("" if name == "agent" else f'economy = "{economy}"\n'),
            encoding="utf-8",
        )
        agents[name] = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(cfg),
             "--duration", str(warm + seconds + 0.5), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
        )
    naives = {
        name: subprocess.Popen(
            [sys.executable, "-c", NAIVE_CHILD, str(ROOT), str(model), str(clip), str(fps),
             str(t)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )
        for name, t in (("naive", threads), ("naive_1", 1))
        if name == "naive" or threads > 1
    }
    procs = {**agents, **naives}
    try:
        time.sleep(warm)
        c0 = {name: _cpu(p) for name, p in procs.items()}
        time.sleep(seconds)
        c1 = {name: _cpu(p) for name, p in procs.items()}
        outs = {name: p.communicate(timeout=180)[0] for name, p in agents.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    frames = fps * seconds
    pair: dict[str, Any] = {name: 1000.0 * (c1[name] - c0[name]) / frames for name in procs}
    for name, out in outs.items():
        pair[f"{name}_run"] = _summary(out)
    return pair


def camera_rate(
    model: Path, clip: Path, rates: list[float], threads: int, runs: int, schedule: str,
    tmp: Path, warm: float, seconds: float, economy_ab: bool = True,
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    pairs: dict[float, list[dict[str, Any]]] = {f: [] for f in rates}
    nan = float("nan")
    for i in range(runs):
        for fps in rates:
            p = paced_pair(model, clip, fps, threads, schedule, tmp, warm, seconds, economy_ab)
            pairs[fps].append(p)
            run = p["agent_run"]
            extra = "".join(
                f", {name} {p[name]:.2f}" for name in ("agent_eco_off", "naive_1") if name in p
            )
            print(
                f"  run {i + 1} {fps:g} fps: agent {p['agent']:.2f} ms/frame (kept "
                f"{run.get('kept_fps', nan):.1f} fps, {run.get('threads_in_use')} thread(s) "
                f"at the end, e2e - invoke {run.get('e2e_minus_invoke', nan):.2f} ms), naive "
                f"{p['naive']:.2f}{extra}; agent/naive {p['agent'] / p['naive']:.3f}",
                file=sys.stderr, flush=True,
            )
    for fps, ps in pairs.items():
        row: dict[str, Any] = {
            "agent_cpu_ms_per_frame": statistics.median(p["agent"] for p in ps),
            "naive_cpu_ms_per_frame": statistics.median(p["naive"] for p in ps),
            "agent_over_naive": statistics.median(p["agent"] / p["naive"] for p in ps),
            "agent_kept_fps": statistics.median(p["agent_run"].get("kept_fps", nan) for p in ps),
            "e2e_minus_invoke_p50_ms": statistics.median(
                p["agent_run"].get("e2e_minus_invoke", nan) for p in ps),
            "agent_invoke_p50_ms": statistics.median(
                p["agent_run"].get("invoke_p50", nan) for p in ps),
            "agent_threads_at_end": [p["agent_run"].get("threads_in_use") for p in ps],
        }
        if "agent_eco_off" in ps[0]:
            row["eco_off_over_naive"] = statistics.median(
                p["agent_eco_off"] / p["naive"] for p in ps)
            row["agent_over_eco_off"] = statistics.median(
                p["agent"] / p["agent_eco_off"] for p in ps)
            row["eco_off_invoke_p50_ms"] = statistics.median(
                p["agent_eco_off_run"].get("invoke_p50", nan) for p in ps)
        if "naive_1" in ps[0]:
            row["naive_1_over_naive"] = statistics.median(p["naive_1"] / p["naive"] for p in ps)
            row["agent_over_naive_1"] = statistics.median(p["agent"] / p["naive_1"] for p in ps)
        out[f"{fps:g} fps"] = row
    return out


# -- RSS and start-up ----------------------------------------------------------------------
def agent_run(
    model: Path, clip: Path, tmp: Path, frames: int, schedule: str
) -> tuple[float, float | None]:
    """Peak RSS (MB) of a real `edge-agent run` and process start -> first result (s), timed
    from outside: from just before the process is spawned to its first JSON result line."""
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f'[device]\nstate_dir = "{tmp / "state"}"\n'
        f'[model]\npath = "{model}"\n'
        f'[camera]\nsource = "{clip}"\npolicy = "all"\nloop = true\n'
        f'[metrics]\ninterval_s = 1.0\n[pipeline]\nstdout_jsonl = true\n'
        + ("" if schedule == "none" else f'schedule = "{schedule}"\n'),
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
    ap.add_argument("--model", type=Path, default=MODELS / "mobilenet_v2_int8.tflite")
    ap.add_argument("--paced-model", type=Path, default=MODELS / "blazeface_int8.tflite")
    ap.add_argument("--paced-clip", type=Path, default=MODELS / "demo_astronaut.mp4")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, nargs="*", default=None,
                    help="thread counts to measure (default: 1 and the usable cores)")
    ap.add_argument("--paced-runs", type=int, default=5)
    ap.add_argument("--paced-fps", type=float, nargs="*", default=[15.0, 30.0])
    ap.add_argument("--paced-threads", type=int, default=None, help="default: the usable cores")
    ap.add_argument("--paced-seconds", type=float, default=15.0)
    ap.add_argument("--warm-seconds", type=float, default=6.0,
                    help="before the CPU window: start-up, and the economy's first window")
    ap.add_argument("--no-economy-ab", action="store_true",
                    help="camera rate: no second agent with pipeline.economy off (a build "
                    "from before the setting)")
    ap.add_argument("--schedule", default="auto",
                    help="pipeline.schedule for every agent run (none: leave it unset, for a "
                    "build from before the setting)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["throughput", "paced", "rss"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    try:
        from edge_agent.telemetry.cgroup import available_cores

        cores = max(1, int(available_cores()))
    except ImportError:  # a build from before #20: the affinity mask
        cores = len(os.sched_getaffinity(0))
    threads = args.threads or sorted({1, cores})
    paced_threads = args.paced_threads or cores
    summary: dict[str, Any] = {
        "model": args.model.name, "cores": cores, "schedule_setting": args.schedule,
        "load_before": load(),
    }
    print(f"load average before: {summary['load_before']} ({cores} usable cores)",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        cheap = tmp / "cheap_640x480.avi"
        content = make_clip(cheap, args.frames)
        clips = {"cheap": cheap}
        costly = tmp / "costly_960x540.mp4"
        if make_costly(cheap, costly):
            clips["costly"] = costly
        else:
            print("ffmpeg not found: the costly-to-decode video is skipped", file=sys.stderr)
        summary["clips"] = {
            "cheap": f"640x480 MJPG, {args.frames} frames, {content}",
            "costly": "the same frames as 960x540 H.264 (crf 18)" if "costly" in clips else None,
        }
        if "throughput" not in args.skip:
            summary["throughput"] = throughput(
                args.model, clips, threads, max(args.runs, 1), args.frames, args.schedule
            )
        if "paced" not in args.skip:
            summary["paced"] = {
                "model": args.paced_model.name, "clip": args.paced_clip.name,
                "threads": paced_threads,
                **camera_rate(
                    args.paced_model, args.paced_clip, args.paced_fps, paced_threads,
                    max(args.paced_runs, 1), args.schedule, tmp, args.warm_seconds,
                    args.paced_seconds, not args.no_economy_ab,
                ),
            }
        if "rss" not in args.skip:
            rss_runs, first_runs = [], []
            for _ in range(3):
                rss, first = agent_run(args.model, cheap, tmp, args.frames, args.schedule)
                rss_runs.append(rss)
                if first is not None:
                    first_runs.append(first)
            summary["agent_rss_mb"] = statistics.median(rss_runs)
            summary["start_to_first_result_s"] = (
                statistics.median(first_runs) if first_runs else None
            )
    summary["load_after"] = load()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    report(summary)


def report(s: dict[str, Any]) -> None:
    print(f"model {s['model']}, {s['cores']} usable cores, schedule setting "
          f"{s['schedule_setting']}; load average before {s['load_before']}, after "
          f"{s['load_after']}; medians")
    print(f"  cheap: {s['clips']['cheap']}; costly: {s['clips']['costly'] or 'skipped'}")
    for key, t in s.get("throughput", {}).items():
        threads = int(key.split()[0].split("=")[1])
        naive_target = 1.15 if threads == 1 else 1.0
        raw_target = "  (target >= 0.95)" if threads == 1 else ""
        print(
            f"  {key} [{t['schedule']}]: fps raw {t['raw_fps']:.0f} naive {t['naive_fps']:.0f} "
            f"pipeline {t['pipeline_fps']:.0f}"
        )
        print(f"    pipeline/naive {t['pipeline_over_naive']:.3f}  (target >= {naive_target}; "
              f"raw/naive {t['raw_fps'] / t['naive_fps']:.3f} bounds any pipeline)")
        print(f"    pipeline/raw   {t['pipeline_over_raw']:.3f}{raw_target}")
        print(
            f"    e2e p50 - invoke p50 {t['e2e_minus_invoke_p50_ms']:.2f} ms (target <= 2); "
            f"interpreter busy {t['invoke_busy']:.3f}, waiting {t['invoke_starved']:.3f}; "
            f"invoke p50 {t['invoke_slowdown']:.2f}x the bare loop's"
        )
    paced = s.get("paced")
    if paced:
        print(f"  camera rate: {paced['model']} on {paced['clip']}, threads {paced['threads']}")
        for key, p in paced.items():
            if not isinstance(p, dict):
                continue
            print(
                f"    {key}: CPU per frame agent {p['agent_cpu_ms_per_frame']:.2f} ms, "
                f"naive {p['naive_cpu_ms_per_frame']:.2f} ms, agent/naive "
                f"{p['agent_over_naive']:.3f} (target <= 1.05; agent kept "
                f"{p['agent_kept_fps']:.1f} fps)"
            )
            print(
                f"      agent e2e p50 - invoke p50 {p['e2e_minus_invoke_p50_ms']:.2f} ms "
                "(target <= 2; the frames of a camera, decoded when they come); invoke p50 "
                f"{p['agent_invoke_p50_ms']:.2f} ms; interpreter threads at the end "
                f"{p['agent_threads_at_end']}"
            )
            if "eco_off_over_naive" in p:
                print(
                    f"      economy off: agent/naive {p['eco_off_over_naive']:.3f}, invoke p50 "
                    f"{p['eco_off_invoke_p50_ms']:.2f} ms; economy on/off "
                    f"{p['agent_over_eco_off']:.3f}"
                )
            if "naive_1_over_naive" in p:
                print(
                    f"      naive loop on 1 thread / on {paced['threads']}: "
                    f"{p['naive_1_over_naive']:.3f}; agent / naive on 1 thread "
                    f"{p['agent_over_naive_1']:.3f}"
                )
    if "agent_rss_mb" in s:
        print(f"  agent RSS {s['agent_rss_mb']:.0f} MB  (target <= 150)")
        first = s["start_to_first_result_s"]
        shown = "-" if first is None else f"{first:.2f}"
        print(f"  process start -> first result {shown} s  (target <= 1)")


if __name__ == "__main__":
    main()
