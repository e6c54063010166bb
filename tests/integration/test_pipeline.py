"""The pipeline on real models and real sources: determinism, drop accounting, swap, errors."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.agent.pipeline import FrameResult, JsonLinesSink, Pipeline
from edge_agent.camera import Backoff, CameraReader, LatestFrameSlot, SyntheticSource
from edge_agent.camera.clips import synthetic_frames, write_clip
from edge_agent.camera.sources import OpenCVSource
from edge_agent.inference import Runner
from tests.support.helpers import MODELS

DIGITS = MODELS / "digits_int8.tflite"
MOBILENET = MODELS / "mobilenet_v2_int8.tflite"


class SlowModel:
    """The real model with a deliberately slow invoke (sleeps after the real one)."""

    def __init__(self, model: Any, extra_s: float) -> None:
        self._model = model
        self.extra_s = extra_s

    def invoke(self) -> None:
        self._model.invoke()
        time.sleep(self.extra_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def slow_runner(path: Path, extra_s: float) -> Runner:
    runner = Runner.open(path)
    runner.model = SlowModel(runner.model, extra_s)
    return runner


def make_pipeline(
    schedule: str,
    runner_factory: Any,
    source: Any,
    policy: str = "all",
    limit: int | None = None,
    **kw: Any,
) -> Pipeline:
    slot = LatestFrameSlot(policy, on_demand=policy == "all" and not source.live)  # type: ignore[arg-type]
    reader = CameraReader(source, slot, backoff=Backoff(0.01, 0.05, rng=random.Random(0)))
    return Pipeline(
        runner_factory, reader, limit=limit, model_name="m", schedule=schedule,  # type: ignore[arg-type]
        **kw,
    )


def run_to_completion(p: Pipeline, timeout: float = 60) -> list[FrameResult]:
    results: list[FrameResult] = []
    p.add_sink(results.append)
    p.start()
    assert p.done.wait(timeout), "pipeline did not finish"
    assert p.stop(timeout=3)
    return results


@pytest.fixture(params=["overlap", "serial"])
def schedule(request: pytest.FixtureRequest) -> str:
    """Every behaviour below holds on both schedules."""
    return str(request.param)


def _summary(fr: FrameResult) -> tuple[Any, ...]:
    return (fr.seq, tuple((c.class_id, round(c.score, 6)) for c in fr.result.classes))


class TestDeterminism:
    def test_synthetic_source_gives_the_same_results_every_run(self, schedule: str) -> None:
        runs = []
        for _ in range(2):
            p = make_pipeline(
                schedule, lambda: Runner.open(DIGITS), SyntheticSource(64, 48, fps=None), limit=25
            )
            results = run_to_completion(p)
            runs.append([_summary(r) for r in results])
            c = p.counters()
            assert c["processed"] == 25 and c["errors"] == 0
            assert c["captured"] == c["processed"] + c["dropped"] and c["in_flight"] == 0
        assert runs[0] == runs[1]
        assert [s[0] for s in runs[0]] == list(range(25))  # policy all: every frame, in order
        assert len({s[1][0][0] for s in runs[0]}) > 1  # the pattern moves, results change

    def test_timings_and_json_line(
        self, schedule: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        p = make_pipeline(
            schedule, lambda: Runner.open(DIGITS), SyntheticSource(64, 48, fps=None), limit=3
        )
        p.add_sink(JsonLinesSink())
        results = run_to_completion(p)
        t = results[0].timings
        assert set(t) == {"age", "preprocess", "invoke", "postprocess", "e2e"}
        assert t["e2e"] >= t["preprocess"] + t["invoke"] + t["postprocess"]
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 3 and '"frame":0' in lines[0] and '"classes"' in lines[0]
        assert p.latencies.total()["e2e"].count == 3


class TestDropPolicy:
    def test_latest_drops_and_counts_every_frame_with_a_slow_model(self, schedule: str) -> None:
        p = make_pipeline(
            schedule, lambda: slow_runner(DIGITS, 0.03), SyntheticSource(64, 48, fps=300), "latest"
        )
        results: list[FrameResult] = []
        p.add_sink(results.append)
        p.start()
        while p.counters()["processed"] < 10:
            time.sleep(0.01)
        assert p.stop(timeout=3)
        c = p.counters()
        assert c["dropped"] > c["processed"] > 0  # the camera runs ~10x faster than the model
        assert c["captured"] == c["processed"] + c["dropped"] and c["in_flight"] == 0
        assert c["dropped_by"]["stale"] == c["dropped"] - c["dropped_by"]["shutdown"]
        assert len(results) == c["processed"]
        seqs = [r.seq for r in results]
        assert seqs == sorted(seqs) and seqs[-1] - seqs[0] > len(seqs)  # skipped stale frames

    def test_all_drops_nothing_with_a_slow_model(self, schedule: str, tmp_path: Path) -> None:
        clip = tmp_path / "clip.avi"
        write_clip(clip, synthetic_frames(12, 96, 72))
        p = make_pipeline(
            schedule, lambda: slow_runner(DIGITS, 0.01), OpenCVSource(str(clip), live=False), "all"
        )
        results = run_to_completion(p)
        c = p.counters()
        assert [r.seq for r in results] == list(range(12))
        assert c == {**c, "captured": 12, "processed": 12, "dropped": 0, "in_flight": 0}


class TestSwapAndErrors:
    def test_hot_swap_between_frames_drops_nothing(self, schedule: str) -> None:
        p = make_pipeline(schedule, lambda: Runner.open(DIGITS), SyntheticSource(64, 48, fps=None))
        results: list[FrameResult] = []
        p.add_sink(results.append)
        p.start()
        while p.counters()["processed"] < 5:
            time.sleep(0.005)
        old = p.swap(Runner.open(MOBILENET))  # a different input shape and decoder
        assert old is not p.runner
        while len({len(r.result.classes) for r in results}) < 2:
            time.sleep(0.005)
        assert p.stop(timeout=3)
        c = p.counters()
        assert c["swaps"] == 1 and c["dropped_by"]["swap"] == 0 and c["errors"] == 0
        assert [r.seq for r in results] == list(range(len(results)))  # no frame lost
        assert c["captured"] == c["processed"] + c["dropped"]

    def test_failing_stage_is_counted_and_reported_not_fatal(self, schedule: str) -> None:
        class Flaky:
            def __init__(self, model: Any) -> None:
                self._model, self.n = model, 0

            def invoke(self) -> None:
                self.n += 1
                if self.n % 3 == 0:
                    raise RuntimeError("delegate hiccup")
                self._model.invoke()

            def __getattr__(self, name: str) -> Any:
                return getattr(self._model, name)

        def factory() -> Runner:
            r = Runner.open(DIGITS)
            r.model = Flaky(r.model)
            return r

        p = make_pipeline(schedule, factory, SyntheticSource(64, 48, fps=None), limit=9)
        results = run_to_completion(p)
        c = p.counters()
        assert c["errors"] == 3 and c["processed"] == 6 and c["dropped_by"]["error"] == 3
        bad = [r for r in results if not r.ok]
        assert len(bad) == 3 and "delegate hiccup" in (bad[0].error or "")
        assert bad[0].to_json()["error"].startswith("frame ")

    def test_snapshot_ring_saves_annotated_frames(self, schedule: str, tmp_path: Path) -> None:
        p = make_pipeline(
            schedule, lambda: Runner.open(DIGITS), SyntheticSource(64, 48, fps=None), limit=6,
            snapshot_ring=4,
        )
        assert p.latest_snapshot() is None
        run_to_completion(p)
        paths = p.save_snapshots(tmp_path / "snaps")
        assert [x.name for x in paths] == [f"frame-{i:08d}.jpg" for i in range(2, 6)]
        import cv2

        img = cv2.imread(str(paths[0]))
        assert img is not None and img.shape == (48, 64, 3)
        assert not np.array_equal(img, p.snapshots.items()[0].image)  # labels drawn on it
        jpeg = p.latest_snapshot()
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"


def _wakeups(threads: list[Any]) -> dict[str, int]:
    """Voluntary context switches (sleeps) of each thread so far, from /proc."""
    out = {}
    for t in threads:
        status = Path(f"/proc/self/task/{t.native_id}/status").read_text()
        out[t.name] = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return out


class TestSleepsWhenIdle:
    def test_threads_wake_for_frames_not_on_a_timer(self, schedule: str) -> None:
        """At 2 frames per second each pipeline thread sleeps a few times per frame (a frame,
        a hand-over, the GIL, the 0.25 s bound of a wait); a 20 Hz polling loop (the old 50 ms
        timeouts) would add ~10 wake-ups per frame on its own."""
        p = make_pipeline(
            schedule, lambda: Runner.open(DIGITS), SyntheticSource(64, 48, fps=2), "latest"
        )
        p.start()
        while p.counters()["processed"] < 2:
            time.sleep(0.05)
        before = _wakeups(p._threads)
        n0 = p.counters()["processed"]
        while p.counters()["processed"] < n0 + 5:
            time.sleep(0.05)
        after = _wakeups(p._threads)
        frames = p.counters()["processed"] - n0
        assert p.stop(timeout=3)
        for name, count in after.items():
            per_frame = (count - before[name]) / frames
            assert per_frame < 7, f"{name}: {per_frame:.1f} wake-ups per frame"


def test_decoder_threads_reach_ffmpeg(tmp_path: Path) -> None:
    import cv2

    clip = tmp_path / "clip.avi"
    write_clip(clip, synthetic_frames(3, 96, 72))
    src = OpenCVSource(str(clip), live=False)
    src.decode_threads = 1
    src.open()
    try:
        assert src._cap.get(cv2.CAP_PROP_N_THREADS) == 1
        assert src.read() is not None
    finally:
        src.close()
