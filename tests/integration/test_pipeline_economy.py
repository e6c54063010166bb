"""The pipeline's economy on a real model: one interpreter thread while the camera leaves the
pipeline idle, full threads again for a model swap and for a model under trial, and a failure
to build the one-thread interpreter costs nothing but the saving."""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.agent.economy import WINDOW_S
from edge_agent.agent.pipeline import FrameResult, Pipeline
from edge_agent.camera import Backoff, CameraReader, LatestFrameSlot, SyntheticSource
from edge_agent.inference import Runner
from edge_agent.updates.activation import watch
from edge_agent.updates.trial import TrialMonitor, TrialPolicy
from tests.support.helpers import MODELS, run_cli

FACE = MODELS / "blazeface_int8.tflite"


def camera_pipeline(runner: Runner, schedule: str, economy: str = "auto") -> Pipeline:
    """A 20 fps camera: BlazeFace takes a few ms of each 50 ms frame interval."""
    slot = LatestFrameSlot("latest")
    reader = CameraReader(SyntheticSource(320, 240, fps=20), slot,
                          backoff=Backoff(0.01, 0.05, rng=random.Random(0)))
    return Pipeline(lambda: runner, reader, model_name="face", schedule=schedule,  # type: ignore[arg-type]
                    economy=economy)


def wait_for(pred: Any, timeout: float = 8 * WINDOW_S) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def economy(p: Pipeline) -> dict[str, Any]:
    info: dict[str, Any] = p.schedule_info()["economy"]
    return info


def test_one_thread_gives_the_same_outputs() -> None:
    runner = Runner.open(FACE, threads=2)
    model = runner.model
    assert model.can_use_fewer_threads
    x = np.random.default_rng(0).integers(-128, 128, model.inputs[0].shape, dtype=np.int8)

    def outputs() -> list[np.ndarray]:
        model.set_input(0, x)
        model.invoke()
        return model.outputs_all()

    full = outputs()
    with pytest.raises(Exception, match="no interpreter prepared with 1 thread"):
        model.use_threads(1)
    model.prepare_threads(1)
    model.use_threads(1)
    assert model.threads_in_use == 1 and model.threads == 2
    for a, b in zip(full, outputs(), strict=True):
        np.testing.assert_array_equal(a, b)
    model.use_threads(2)
    assert model.threads_in_use == 2
    assert not Runner.open(FACE, threads=1).model.can_use_fewer_threads


@pytest.mark.parametrize("schedule", ["serial", "overlap"])
def test_a_slow_camera_runs_on_one_thread_and_a_swap_starts_over(schedule: str) -> None:
    runner = Runner.open(FACE, threads=2)
    p = camera_pipeline(runner, schedule)
    results: list[FrameResult] = []
    p.add_sink(results.append)
    p.start()
    try:
        assert wait_for(lambda: runner.model.threads_in_use == 1), economy(p)
        info = economy(p)
        assert info["active"] and info["threads_in_use"] == 1
        assert info["reason"].startswith("1 thread: projected busy")
        n = len(results)
        assert wait_for(lambda: len(results) >= n + 10)  # frames keep coming on one thread
        assert all(r.ok for r in results)
        # a new model starts on its full threads and measures again
        new = Runner.open(FACE, threads=2)
        p.swap(new)
        assert wait_for(lambda: economy(p)["reason"].startswith("model swapped"))
        assert economy(p)["threads_in_use"] == 2 and new.model.threads_in_use == 2
        assert wait_for(lambda: new.model.threads_in_use == 1), economy(p)
    finally:
        assert p.stop(timeout=3)
    c = p.counters()
    assert c["errors"] == 0 and c["in_flight"] == 0
    assert c["captured"] == c["processed"] + c["dropped"]


def test_off_keeps_every_thread() -> None:
    runner = Runner.open(FACE, threads=2)
    p = camera_pipeline(runner, "serial", economy="off")
    p.start()
    try:
        assert wait_for(lambda: p.counters()["processed"] >= 3 * 20 * WINDOW_S / 2,
                        timeout=10 * WINDOW_S)
    finally:
        assert p.stop(timeout=3)
    assert runner.model.threads_in_use == 2
    assert economy(p) == {"setting": "off", "active": False, "threads_in_use": 2,
                          "slowdown": None, "switches": 0, "reason": "off (pipeline.economy)"}


def test_a_model_under_trial_keeps_its_threads_and_its_baseline_ring() -> None:
    runner = Runner.open(FACE, threads=2)
    watched = watch(runner)
    watched.monitor = TrialMonitor(TrialPolicy(inferences=10**6, seconds=3600),
                                   time.monotonic())
    p = camera_pipeline(runner, "serial")
    p.start()
    try:
        assert wait_for(lambda: "under trial" in economy(p)["reason"])
        assert runner.model.threads_in_use == 2
        watched.monitor = None  # the verdict came: the model may save CPU now
        assert wait_for(lambda: runner.model.threads_in_use == 1), economy(p)
        ring = len(watched.latencies_ms)
        n = p.counters()["processed"]
        assert wait_for(lambda: p.counters()["processed"] >= n + 10)
        # one-thread invokes do not enter the ring the next update's baseline is taken from
        assert len(watched.latencies_ms) == ring
    finally:
        assert p.stop(timeout=3)


def test_a_one_thread_interpreter_that_cannot_be_built_only_costs_the_saving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "face.tflite"
    shutil.copy(FACE, path)
    shutil.copy(FACE.with_suffix(".json"), path.with_suffix(".json"))
    runner = Runner.open(path, threads=2)
    path.unlink()  # the file is gone from under the running model (a disk fault, a cleanup)
    p = camera_pipeline(runner, "serial")
    caplog.set_level(logging.WARNING, logger="edge_agent.pipeline")
    p.start()
    try:
        assert wait_for(lambda: economy(p)["setting"] == "off"), economy(p)
        n = p.counters()["processed"]
        assert wait_for(lambda: p.counters()["processed"] >= n + 10)
    finally:
        assert p.stop(timeout=3)
    info = economy(p)
    assert info["threads_in_use"] == 2 and runner.model.threads_in_use == 2
    assert info["reason"].startswith("off: the 1-thread interpreter failed")
    assert p.counters()["errors"] == 0
    lines = [r.getMessage() for r in caplog.records if "economy off" in r.getMessage()]
    assert len(lines) == 1 and str(path) in lines[0]


def test_the_agent_on_the_demo_clip_runs_on_one_thread_and_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[model]\npath = "{FACE}"\nthreads = 2\n'
        '[camera]\nsource = "demo"\n[metrics]\ninterval_s = 0.5\n',
        encoding="utf-8",
    )
    proc = run_cli("run", "--config", str(cfg), "--duration", str(3 * WINDOW_S + 2), "--json",
                   timeout=90)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    eco = summary["pipeline"]["economy"]
    assert eco["setting"] == "auto" and eco["active"] and eco["threads_in_use"] == 1, eco
    assert "pipeline economy: 1 thread" in proc.stderr
    assert summary["counters"]["errors"] == 0 and summary["threads_left"] == []
