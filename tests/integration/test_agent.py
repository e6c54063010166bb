"""The Agent with real models: component hooks and order, stop requests, time-limited stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.agent.lifecycle import Agent, Component
from edge_agent.agent.pipeline import FrameResult
from edge_agent.config import parse_config
from edge_agent.errors import ConfigError
from tests.support.helpers import MODELS


def config(tmp_path: Path, **camera: Any) -> Any:
    return parse_config(
        {
            "device": {"id": "t1", "state_dir": str(tmp_path / "state")},
            "model": {"path": str(MODELS / "digits_int8.tflite")},
            "camera": {"source": "synthetic", "width": 64, "height": 48, "fps": 200, **camera},
            "metrics": {"interval_s": 0.1},
        }
    )


def test_pipeline_schedule_setting_forces_the_schedule(tmp_path: Path) -> None:
    for forced in ("serial", "overlap"):
        cfg = config(tmp_path)
        cfg.pipeline.schedule = forced
        agent = Agent(cfg)
        pipeline = agent.build(frames=5)
        assert pipeline.schedule == forced
        assert pipeline.schedule_info()["reason"] == "forced by pipeline.schedule"
        summary = agent.run(frames=5)
        assert summary["counters"]["processed"] == 5 and summary["threads_left"] == []


class Recorder(Component):
    def __init__(self, name: str, log: list[str], stop_after_results: int | None = None) -> None:
        self.name = name
        self.log = log
        self.results = 0
        self.snapshots: list[dict[str, Any]] = []
        self.agent: Any = None
        self.stop_after_results = stop_after_results

    def start(self, agent: Any) -> None:
        self.agent = agent
        assert agent.pipeline is not None and agent.config.device.id == "t1"
        self.log.append(f"start {self.name}")

    def on_started(self) -> None:
        self.log.append(f"started {self.name}")

    def contribute(self, snapshot: dict[str, Any]) -> None:
        snapshot[self.name] = {"results": self.results}
        self.log.append(f"contribute {self.name}")

    def on_tick(self, snapshot: dict[str, Any]) -> None:
        self.snapshots.append(snapshot)
        self.log.append(f"tick {self.name}")

    def on_result(self, result: Any) -> None:
        assert isinstance(result, FrameResult) and result.ok
        self.results += 1
        if self.stop_after_results and self.results == self.stop_after_results:
            self.agent.request_stop(f"{self.name} asked")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


class TestComponents:
    def test_hooks_run_in_documented_order(self, tmp_path: Path) -> None:
        log: list[str] = []
        a, b = Recorder("a", log), Recorder("b", log, stop_after_results=40)
        agent = Agent(config(tmp_path), components=[a])
        agent.add_component(b)
        assert agent.components == [a, b]
        summary = agent.run(duration=30)
        assert summary["reason"] == "b asked"
        assert log[:4] == ["start a", "start b", "started a", "started b"]
        assert log[-2:] == ["stop b", "stop a"]
        ticks = [e for e in log if not e.startswith(("start", "stop"))]
        assert ticks and len(ticks) % 4 == 0
        for i in range(0, len(ticks), 4):  # every component contributes before any ticks
            assert ticks[i : i + 4] == ["contribute a", "contribute b", "tick a", "tick b"]
        counters = summary["counters"]
        assert a.results == b.results == counters["processed"] >= 40
        assert counters["captured"] == counters["processed"] + counters["dropped"]
        snap = a.snapshots[-1]
        assert snap["a"] == {"results": snap["a"]["results"]} and "b" in snap
        assert snap["schema"].startswith("edge-agent/metrics/")
        assert snap["model"]["source"] == "config"
        assert snap["pipeline"]["schedule"] == agent.pipeline.schedule  # type: ignore[union-attr]
        assert snap["pipeline"]["setting"] == "auto" and snap["pipeline"]["reason"]
        assert 0.0 < snap["pipeline"]["invoke_busy"] <= 1.0
        assert summary["threads_left"] == []
        with pytest.raises(RuntimeError, match="before the agent starts"):
            agent.add_component(Recorder("c", log))

    def test_a_hanging_component_does_not_hold_shutdown(self, tmp_path: Path) -> None:
        release = threading.Event()

        class Hangs(Component):
            name = "hangs"

            def stop(self) -> None:
                release.wait(30)

        log: list[str] = []
        agent = Agent(config(tmp_path), components=[Recorder("a", log), Hangs()])
        t0 = time.monotonic()
        summary = agent.run(frames=5)
        elapsed = time.monotonic() - t0
        release.set()
        assert summary["reason"] == "frame limit reached" and log[-1] == "stop a"
        assert summary["counters"]["processed"] == 5
        assert elapsed < 15  # the hang (30 s) was cut by the shutdown limit

    def test_missing_model_and_bad_camera_are_config_errors(self, tmp_path: Path) -> None:
        cfg = config(tmp_path)
        cfg.model.path = tmp_path / "nope.tflite"
        with pytest.raises(ConfigError, match=r"^model\.path: .*nope\.tflite: no such model file"):
            Agent(cfg).build()
        with pytest.raises(ConfigError, match=r"^camera\.source: .*gone\.avi"):
            Agent(config(tmp_path, source=str(tmp_path / "gone.avi"))).build()


class TestFailingSources:
    def test_folder_with_non_image_and_changing_sizes_keeps_running(self, tmp_path: Path) -> None:
        import cv2

        from edge_agent.camera import synthetic_frame

        folder = tmp_path / "frames"
        folder.mkdir()
        cv2.imwrite(str(folder / "a.png"), synthetic_frame(0, 64, 48))
        (folder / "b.txt").write_text("not an image")
        cv2.imwrite(str(folder / "c.jpg"), synthetic_frame(1, 200, 90))
        log: list[str] = []
        rec = Recorder("a", log, stop_after_results=12)
        agent = Agent(config(tmp_path, source=str(folder), fps=None), components=[rec])
        summary = agent.run(duration=60)
        assert summary["reason"] == "a asked" and rec.results >= 12
        cam = summary["camera"]
        assert cam["bad_frames"] >= 5 and cam["size_changes"] >= 10
        assert "b.txt: not a decodable image" in cam["last_error"]
        assert summary["counters"]["errors"] == 0
        assert rec.snapshots[-1]["camera"]["bad_frames"] >= 1  # reported in the metrics


def test_component_failing_to_start_is_one_error_and_stops_the_started(tmp_path: Path) -> None:
    from edge_agent.errors import ComponentError

    class Broken(Component):
        name = "broken"

        def start(self, agent: Any) -> None:
            raise OSError("address already in use")

    log: list[str] = []
    agent = Agent(config(tmp_path), components=[Recorder("a", log), Broken()])
    with pytest.raises(ComponentError, match="component broken failed to start: address"):
        agent.run(duration=5)
    assert log[0] == "start a" and log[-1] == "stop a"
    assert agent.pipeline is not None and agent.pipeline.done.is_set()
