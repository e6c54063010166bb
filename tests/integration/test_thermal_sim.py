"""The frame-rate governor in a closed loop with the C firmware simulator.

A real pipeline (synthetic camera at 30 fps, the shipped face detector), the real bridge
component reading the simulator's telemetry over a pty, the thermal component governing the
pipeline from the bridge's board temperature. The simulator's board heats with the frame rate
the test relays to it (SIM_LOAD: 40 °C + 1.5 °C per frame/s, tau 1.5 s; uncapped, 30 fps
would take it to 85 °C): the governor must hold it under the 70 °C target without
oscillating. The trace is printed."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge_agent.agent.pipeline import Pipeline
from edge_agent.bridge.component import BridgeComponent
from edge_agent.camera import CameraReader, LatestFrameSlot
from edge_agent.camera.sources import SyntheticSource
from edge_agent.config import BridgeConfig, ThermalConfig
from edge_agent.inference import Runner
from edge_agent.ops.status import render, summarize
from edge_agent.ops.thermal import ThermalComponent
from firmware_bridge import BridgeClient
from firmware_bridge.testing import SimPort
from tests.support.helpers import MODELS
from tests.support.thermal import cap_moves, reversals

TARGET = 70.0
RUN_S = 24.0


def test_governor_holds_the_simulated_board_under_target(tmp_path: Path) -> None:
    with SimPort(tmp_path, sim_args=("--thermal-tau-ms", "1500", "--heat-per-fps", "150")) as sim:
        client = BridgeClient(sim.url, timeout_s=0.5)
        bridge = BridgeComponent(BridgeConfig(enabled=True, port=sim.url,
                                              telemetry_interval_s=0.1), client=client)
        thermal = ThermalComponent(ThermalConfig(
            enabled=True, root=tmp_path / "no-sysfs", vcgencmd=False, interval_s=0.25,
            target_c=TARGET, hysteresis_c=5.0, horizon_s=2.0, settle_s=1.0, min_fps=2.0,
        ), bridge=bridge.status)
        reader = CameraReader(SyntheticSource(320, 240, fps=30.0), LatestFrameSlot("latest"))
        pipeline = Pipeline(lambda: Runner.open(MODELS / "blazeface_float32.tflite"), reader)
        agent = SimpleNamespace(pipeline=pipeline, config=None)
        stop = threading.Event()
        marks: deque[tuple[float, int]] = deque(maxlen=8)  # ~1 s of (time, processed)
        trace: list[tuple[float, float | None, float | None, float]] = []

        def relay() -> None:
            """The board's load is the agent's frame rate: measured, sent to the simulator."""
            t0 = time.monotonic()
            while not stop.wait(0.125):
                now = time.monotonic()
                marks.append((now, pipeline.counters()["processed"]))
                (ta, na), (tb, nb) = marks[0], marks[-1]
                fps = (nb - na) / (tb - ta) if tb > ta else 0.0
                try:
                    client.sim_load(fps)
                except Exception:  # the link is the bridge component's business; retry
                    continue
                if len(trace) < (now - t0) * 2:
                    st = bridge.status()
                    trace.append((now - t0, st.get("board_temp_c"), thermal.status()["cap_fps"],
                                  fps))

        pipeline.start()
        bridge.start(agent)
        thermal.start(agent)
        relayer = threading.Thread(target=relay, daemon=True)
        relayer.start()
        try:
            time.sleep(RUN_S)
        finally:
            stop.set()
            relayer.join(2)
            thermal.stop()
            bridge.stop()
            pipeline.stop()
        print("\n   t s  board °C  cap fps  fps")
        for t, temp, cap, fps in trace:
            print(f"{t:6.1f}  {temp if temp is not None else float('nan'):8.1f}  "
                  f"{cap if cap is not None else '-':>7}  {fps:5.1f}")
        temps = [x for _, x, _, _ in trace if x is not None]
        assert len(temps) > RUN_S, trace  # the bridge read the board all along
        shown = [(round(t, 1), x, c) for t, x, c, _ in trace[::4]]
        assert max(temps) < TARGET + 0.5, ("over the target", shown)
        assert max(temps) > TARGET - 15, "never warmed up: the loop did not close"
        caps = [c for _, _, c, _ in trace if c is not None]
        assert caps, "never capped"
        assert reversals(caps) <= 2, ("oscillating", cap_moves(caps), shown)
        late = [c for t, _, c, _ in trace if t > RUN_S - 8 and c is not None]
        assert reversals(late) == 0, ("the cap swings at the end", late)
        snap: dict[str, Any] = {}
        thermal.contribute(snap)
        th = snap["thermal"]
        assert th["rate_limited_by"] == "thermal" and th["cap_fps"] == caps[-1], th
        assert th["hottest"] in ("bridge.board", "bridge.accel") and th["capped_s"] > 5, th
        text = render(summarize(snap, {}, state="running", pid=1), running=True)
        assert f"thermal: capped at {caps[-1]} fps by thermal" in text


@pytest.mark.parametrize("schedule", ["overlap", "serial"])
def test_rate_cap_holds_on_both_schedules(schedule: str) -> None:
    """An unpaced camera, a cap of 20 fps for 1.5 s, then none: never more frames than the cap
    allows (load can only make it fewer), and lifting it lets the pipeline run free again."""
    reader = CameraReader(SyntheticSource(160, 120, fps=None), LatestFrameSlot("latest"))
    p = Pipeline(lambda: Runner.open(MODELS / "digits_float32.tflite"), reader,
                 schedule=schedule)  # type: ignore[arg-type]
    p.set_rate_cap(20.0)
    assert p.rate_cap == 20.0
    p.start()
    try:
        t0 = time.monotonic()
        time.sleep(1.5)
        capped = p.counters()["processed"]
        elapsed = time.monotonic() - t0
        p.set_rate_cap(None)
        time.sleep(1.0)
        free = p.counters()["processed"] - capped
    finally:
        p.stop()
    assert 0 < capped <= 20.0 * elapsed + 2, (capped, elapsed)
    assert free > capped, (free, capped)  # digits runs at thousands of fps uncapped
