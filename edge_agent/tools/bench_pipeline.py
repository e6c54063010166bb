"""The same model on the same frames three ways, side by side (``edge-agent bench --source``).

1. ``raw``: a bare interpreter invoking in a loop on a fixed input (the ceiling).
2. ``naive``: the loop people write by hand: read -> cvtColor/resize -> set_tensor -> invoke ->
   get_tensor, one frame after the other on one thread.
3. ``pipeline``: the agent's :class:`~..agent.pipeline.Pipeline` (policy ``all``: every frame),
   on the schedule the agent would choose (``schedule="auto"``) or the one given.

Each method gets its own interpreter (same file, backend, threads) and its own freshly opened
source, so decoding is paid by naive and pipeline alike. Rates are steady-state: frames between
the first and the last result, over the time between them. Pure measurement; the CLI prints it
and ``benchmarks/pipeline.py`` repeats it and takes medians.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import psutil

from ..agent.pipeline import FrameResult, Pipeline, tune_process
from ..camera import Backoff, CameraReader, FrameSource, LatestFrameSlot, open_source
from ..config import CameraConfig
from ..errors import SourceError

MAX_FRAMES = 100_000


@dataclass(frozen=True)
class PipelineBench:
    frames: int
    threads: int
    schedule: str
    raw_fps: float
    naive_fps: float
    pipeline_fps: float
    e2e_p50_ms: float
    e2e_p95_ms: float
    invoke_p50_ms: float
    raw_invoke_p50_ms: float
    invoke_busy: float
    invoke_starved: float
    rss_mb: float

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _steady_fps(stamps: list[float]) -> float:
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return float("nan")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _bare(model_path: str, threads: int, backend: Any) -> Any:
    from ..inference.native import quiet_native_stderr

    with quiet_native_stderr():
        interp = backend.Interpreter(model_path=model_path, num_threads=threads)
        interp.allocate_tensors()
    return interp


def _open(source: str) -> FrameSource:
    src = open_source(CameraConfig(source=source, loop=False))
    if getattr(src, "pace_fps", None):
        src.pace_fps = None  # measure compute, not a simulated camera rate
    src.open()
    return src


def run_raw(interp: Any, frames: int) -> tuple[float, list[float]]:
    """Bare invoke loop on a fixed input: fps and per-invoke ms."""
    det = interp.get_input_details()[0]
    interp.set_tensor(det["index"], np.zeros(det["shape"], dtype=det["dtype"]))
    for _ in range(3):
        interp.invoke()
    clock = time.perf_counter
    stamps = [clock()]
    invoke = interp.invoke
    for _ in range(frames):
        invoke()
        stamps.append(clock())
    per = list(np.diff(stamps) * 1000.0)
    return _steady_fps(stamps), per


def run_naive(interp: Any, source: str, frames: int) -> float:
    """read -> cvtColor/resize -> set_tensor -> invoke -> get_tensor, sequentially."""
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    _, h, w, c = (int(x) for x in inp["shape"])
    dtype = inp["dtype"]
    src = _open(source)
    stamps: list[float] = []
    try:
        for _ in range(frames):
            img = src.read()
            if img is None:
                break
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if c == 1 else cv2.COLOR_BGR2RGB)
            img = cv2.resize(img, (w, h)).reshape(1, h, w, c)
            tensor: np.ndarray
            if dtype == np.int8:
                tensor = (img.astype(np.int16) - 128).astype(np.int8)
            elif dtype == np.float32:
                tensor = img.astype(np.float32) / 255.0
            else:
                tensor = img.astype(dtype)
            interp.set_tensor(inp["index"], tensor)
            interp.invoke()
            interp.get_tensor(out["index"])
            stamps.append(time.perf_counter())
    finally:
        src.close()
    return _steady_fps(stamps)


def run_pipeline(
    runner: Any, source: str, frames: int, schedule: str = "overlap",
    decode_threads: int | None = None,
) -> tuple[float, Pipeline]:
    """The agent's pipeline on ``schedule``, its decoder on ``decode_threads`` (as the agent
    sets them); the naive loop keeps FFmpeg's default."""
    src = open_source(CameraConfig(source=source, loop=False))
    src.pace_fps = None
    src.decode_threads = decode_threads
    slot = LatestFrameSlot("all", on_demand=not src.live)
    reader = CameraReader(src, slot, backoff=Backoff(0.05, 0.5))
    stamps: list[float] = []

    def stamp(_fr: FrameResult) -> None:
        stamps.append(time.perf_counter())

    pipeline = Pipeline(
        lambda: runner, reader, sinks=[stamp], limit=frames, keep_images=False,
        schedule=schedule,  # type: ignore[arg-type]
    )
    untune = tune_process()  # as the agent runs it
    try:
        pipeline.start()
        pipeline.done.wait(600)
        pipeline.stop(timeout=5)
    finally:
        untune()
    return _steady_fps(stamps), pipeline


def bench_pipeline(
    model_path: str,
    source: str,
    *,
    threads: int = 1,
    frames: int = 300,
    backend: str = "auto",
    schedule: str = "auto",
) -> PipelineBench:
    """One round of the three ways on ``frames`` frames of ``source``; ``schedule`` as
    ``pipeline.schedule`` (``auto``: chosen from ``threads`` and the usable CPUs)."""
    from ..agent.schedule import choose_schedule
    from ..inference import Runner, select_backend
    from ..telemetry.cgroup import available_cores

    choice = choose_schedule(threads, available_cores(), schedule)
    chosen = choice.schedule

    frames = max(10, min(int(frames), MAX_FRAMES))
    be = select_backend(backend)
    probe = _open(source)  # fail early, with the source's own message
    try:
        if probe.read() is None:
            raise SourceError(f"{source}: no frame")
    finally:
        probe.close()
    runner = Runner.open(model_path, threads=threads, backend=backend, warmup=3)
    raw_fps, raw_ms = run_raw(_bare(model_path, threads, be), frames)
    naive_fps = run_naive(_bare(model_path, threads, be), source, frames)
    pipeline_fps, pipeline = run_pipeline(runner, source, frames, chosen, choice.decode_threads)
    lat = pipeline.latencies.total()
    rss = psutil.Process().memory_info().rss / (1024 * 1024)
    return PipelineBench(
        frames=pipeline.counters()["processed"],
        threads=threads,
        schedule=chosen,
        raw_fps=raw_fps,
        naive_fps=naive_fps,
        pipeline_fps=pipeline_fps,
        e2e_p50_ms=(lat["e2e"].quantile(0.5) or 0.0) * 1000,
        e2e_p95_ms=(lat["e2e"].quantile(0.95) or 0.0) * 1000,
        invoke_p50_ms=(lat["invoke"].quantile(0.5) or 0.0) * 1000,
        raw_invoke_p50_ms=float(np.median(raw_ms)),
        invoke_busy=pipeline.invoke_busy(),
        invoke_starved=pipeline.invoke_starved(),
        rss_mb=rss,
    )
