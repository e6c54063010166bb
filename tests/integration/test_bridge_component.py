"""BridgeComponent: pure decisions with a fake clock, then against the C simulator over a pty."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edge_agent.bridge.component import BridgeComponent, check_bridge
from edge_agent.bridge.rules import (
    UPTIME_WRAP_S,
    OutputRules,
    ProgressGate,
    labels_and_scores,
    uptime_went_back,
)
from edge_agent.config import BridgeConfig, OutputRule, parse_config
from firmware_bridge import BridgeClient, Event
from firmware_bridge.messages import Telemetry
from firmware_bridge.testing import SimPort, wait_for


# result shapes of the inference contract (docs/architecture.md): Result.detections/.classes
@dataclass
class Det:
    label: str
    score: float


@dataclass
class Res:
    detections: list[Det] = field(default_factory=list)
    classes: list[Det] = field(default_factory=list)


@dataclass
class FrameRes:
    result: Res | None
    error: str | None = None


class TestProgressGate:
    def test_kicks_only_while_progress_moves(self) -> None:
        g = ProgressGate(stall_s=2.0)
        assert g.should_kick(None, 0.0)  # start-up grace (model loading)
        assert g.should_kick(None, 1.9)
        assert not g.should_kick(None, 2.0)
        assert g.should_kick(5, 2.1)  # progress: kick again
        assert g.should_kick(5, 4.0)
        assert not g.should_kick(5, 4.5)
        assert g.stalled_for(4.5) == pytest.approx(2.4)
        assert g.should_kick(6, 4.6)


def test_uptime_going_back_is_a_reset_unless_the_counter_wrapped() -> None:
    assert uptime_went_back(812.4, 0.3)
    assert not uptime_went_back(0.3, 812.4)
    assert not uptime_went_back(UPTIME_WRAP_S - 1.0, 0.2)  # u32 ms wrapped after 49.7 days


class TestOutputRules:
    def test_threshold_label_and_refire_interval(self) -> None:
        rules = OutputRules(
            [
                OutputRule(label="face", min_score=0.8, pin=3, hold_ms=500),
                OutputRule(label="cat", min_score=0.5, pin=4, value=0, hold_ms=0),
            ]
        )
        assert rules.evaluate([("face", 0.79), ("dog", 0.99)], 0.0) == []
        fired = rules.evaluate([("face", 0.5), ("face", 0.91)], 0.0)
        assert [(a.pin, a.value, a.hold_ms, a.score) for a in fired] == [(3, 1, 500, 0.91)]
        assert rules.evaluate([("face", 0.9)], 0.2) == []  # within half the hold
        assert [a.pin for a in rules.evaluate([("face", 0.9), ("cat", 0.6)], 0.25)] == [3, 4]
        assert rules.evaluate([("cat", 0.6)], 1.0) == []
        assert [a.pin for a in rules.evaluate([("cat", 0.6)], 1.3)] == [4]

    def test_labels_and_scores_from_results(self) -> None:
        fr = FrameRes(Res([Det("face", 0.9)], [Det("person", 0.4)]))
        assert labels_and_scores(fr) == [("face", 0.9), ("person", 0.4)]
        assert labels_and_scores(FrameRes(None, error="decode failed")) == []


class FakeAgent:
    """What BridgeComponent reads from the Agent: config, the capture hook."""

    def __init__(self) -> None:
        self.config = parse_config({})
        self.captures: list[str] = []
        self.pipeline = None

    def request_capture(self, reason: str) -> None:
        self.captures.append(reason)


class Progress:
    def __init__(self) -> None:
        self.value = 0
        self.moving = True
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            if self.moving:
                self.value += 1

    def __call__(self) -> int:
        return self.value

    def close(self) -> None:
        self._stop.set()
        self._t.join()


def make(sim: SimPort, **over: Any) -> tuple[BridgeComponent, BridgeClient, Progress, FakeAgent]:
    over = {"telemetry_interval_s": 0.1, **over}
    cfg = BridgeConfig(enabled=True, port=sim.url, timeout_s=0.3, **over)
    client = BridgeClient(sim.url, timeout_s=0.3, retries=2, backoff_max_s=0.2)
    progress = Progress()
    comp = BridgeComponent(cfg, progress=progress, client=client)
    agent = FakeAgent()
    comp.start(agent)
    return comp, client, progress, agent


def test_telemetry_in_snapshot(sim: SimPort) -> None:
    comp, _client, progress, _agent = make(sim)
    try:
        assert wait_for(lambda: "power_w" in comp.status())
        snap: dict[str, Any] = {}
        comp.contribute(snap)
        b = snap["bridge"]
        assert b["connected"] is True and b["board"] == "edge-sim"
        assert b["power_w"] > 5 and 30 < b["board_temp_c"] < 80 and 30 < b["accel_temp_c"] < 80
        assert b["temperature_c"] == b["board_temp_c"] and b["link"]["frames_ok"] > 0
    finally:
        comp.stop()
        progress.close()


def test_watchdog_kicked_only_while_pipeline_progresses(sim: SimPort) -> None:
    comp, client, progress, _agent = make(sim, watchdog_timeout_ms=600, stall_s=0.4)
    boots: list[Event] = []
    client.add_listener(lambda e: boots.append(e) if e.kind == "boot" else None)
    try:
        assert wait_for(lambda: comp.stats["kicks"] >= 3)
        time.sleep(1.0)  # progress moves: kicked every 200 ms, no reset
        assert comp.stats["board_resets"] == 0 and comp.stats["kicks_withheld"] == 0
        progress.moving = False  # the pipeline stalls
        assert wait_for(lambda: comp.stats["board_resets"] >= 1, timeout=4)
        assert wait_for(lambda: any(e.data["reset_reason"] == "watchdog" for e in boots))
        assert comp.stats["kicks_withheld"] > 0
        progress.moving = True  # recovers: reconfigured, kicked again, no further reset
        assert wait_for(lambda: comp.status().get("reset_reason") == "watchdog")
        resets = comp.stats["board_resets"]
        kicks = comp.stats["kicks"]
        time.sleep(1.0)
        assert comp.stats["board_resets"] == resets and comp.stats["kicks"] > kicks
    finally:
        comp.stop()
        progress.close()
    # a graceful stop disarmed the watchdog: the board does not reset afterwards
    time.sleep(0.5)
    with BridgeClient(sim.url).open() as c:
        info = c.hello()
        assert c.telemetry().watchdog_timeout_ms == 0
    assert info.boot_count == 1 + resets


def test_output_rule_drives_gpio_and_trigger_requests_capture(sim: SimPort) -> None:
    comp, client, progress, agent = make(
        sim,
        rules=[OutputRule(label="face", min_score=0.8, pin=7, hold_ms=400)],
        trigger_pin=9,
        trigger_debounce_ms=0,
    )
    events: list[Event] = []
    client.add_listener(events.append)
    try:
        assert wait_for(lambda: comp.status().get("board") == "edge-sim")
        comp.on_result(FrameRes(Res([Det("face", 0.7)])))  # below the threshold
        time.sleep(0.2)
        assert client.gpio_get(7)[1] == 0
        comp.on_result(FrameRes(Res([Det("face", 0.93)])))
        assert wait_for(lambda: client.gpio_get(7)[1] == 1)
        # output 7 is wired to input 15 in the simulator: the board reports the edge
        assert wait_for(lambda: any(e.kind == "gpio" and e.data["pin"] == 15 for e in events))
        assert wait_for(lambda: client.gpio_get(7)[1] == 0)  # the board ended the hold
        assert comp.stats["rule_fires"] == 1
        client.sim_input(9, 1)  # the trigger input
        assert wait_for(lambda: agent.captures == ["bridge trigger pin 9 #1"])
        assert comp.stats["triggers"] == 1 and comp.stats["captures"] == 1
    finally:
        comp.stop()
        progress.close()


RESET_SEEN_BY = {  # how the reset shows: (watchdog ms, telemetry interval s, log evidence)
    "event seq": (0, 3600.0, "its event seq went back from"),
    "uptime": (0, 0.1, "its uptime went back from"),
    "watchdog kick": (600, 3600.0, "it refused a watchdog kick: its watchdog is off"),
}


@pytest.mark.parametrize("seen_by", list(RESET_SEEN_BY))
def test_board_reset_with_its_boot_event_lost_is_one_reset_and_set_up_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, seen_by: str
) -> None:
    """The board restarts behind the same pty and its BOOT event is garbled on the line: the
    component counts one board reset (not ~65,000 event gaps), logs it once, and sets the
    board up again (watchdog armed, trigger configured). It learns of the reset from the first
    event after it (its seq went back), from the board's uptime going back at the next
    telemetry poll, or from the board refusing a watchdog kick (its watchdog is off) — and
    the seq step that follows is then not counted again."""
    wdt_ms, interval, evidence = RESET_SEEN_BY[seen_by]
    caplog.set_level(logging.WARNING, logger="edge_agent.bridge")
    with SimPort(tmp_path, sim_args=("--garble-boot",), restartable=True) as sim:
        comp, client, progress, agent = make(
            sim, watchdog_timeout_ms=wdt_ms, trigger_pin=9, trigger_debounce_ms=0,
            telemetry_interval_s=interval,
        )
        try:
            assert wait_for(lambda: comp.status().get("board") == "edge-sim")
            for value in (1, 0, 1, 0):  # events move the board's seq forward
                client.sim_input(9, value)
            assert wait_for(lambda: len(agent.captures) == 2)
            if seen_by == "uptime":  # so that the new board's uptime is surely lower
                assert wait_for(lambda: comp.status().get("uptime_s", 0) >= 1.5)
            sim.restart_board()
            if seen_by == "event seq":
                client.sim_input(9, 1)  # the first event after the reset
            assert wait_for(lambda: comp.stats["board_resets"] == 1)
            assert wait_for(lambda: comp.status()["configured"])  # set up again
            assert client.telemetry().watchdog_timeout_ms == wdt_ms
            for value in (0, 1, 0, 1):  # the trigger works again: configured anew
                client.sim_input(9, value)
            assert wait_for(lambda: len(agent.captures) == 4)
            link = comp.status()["link"]
            assert link["event_gaps"] == 0 and link["seq_resets"] == 1
            assert comp.stats["board_resets"] == 1 and comp.stats["errors"] == 0
        finally:
            comp.stop()
            progress.close()
    resets = [r.getMessage() for r in caplog.records if "the board reset" in r.getMessage()]
    assert len(resets) == 1, resets
    assert evidence in resets[0] and "the BOOT event was lost" in resets[0], resets


def _tel(uptime_s: float) -> Telemetry:
    return Telemetry(uptime_s, 40.0, 45.0, 5.0, 1.0, 5.0, 3000, 0.5, 1, 600, 0, 0, 0, 0)


class _BootBehindAnswer:
    """A client whose telemetry answer, sent before the board reset, is handed over and then
    the reader thread reads the BOOT before the worker runs on: the CI flake of stop 27."""

    def __init__(self) -> None:
        self.uptimes = [2.0, 2.3, 0.1, 0.2]
        self.comp: BridgeComponent | None = None

    def telemetry(self) -> Telemetry:
        up = self.uptimes.pop(0)
        if up == 2.3:  # the answer is out; the board resets and its BOOT is read at once
            assert self.comp is not None
            self.comp._on_event(Event("boot", 1, {"reset_reason": "watchdog", "boot_count": 2}))
        return _tel(up)


def test_a_boot_read_between_a_telemetry_answer_and_its_use_is_one_reset() -> None:
    client = _BootBehindAnswer()
    comp = BridgeComponent(BridgeConfig(enabled=True), client=client)  # type: ignore[arg-type]
    client.comp = comp
    comp._configured = True
    comp._poll_telemetry()  # baseline 2.0
    comp._poll_telemetry()  # 2.3 was measured before the reset: no baseline
    assert comp.stats["board_resets"] == 1  # from the BOOT
    comp._configured = True  # the worker set the board up again
    comp._poll_telemetry()  # 0.1: the new board's uptime, not a second reset
    comp._poll_telemetry()
    assert comp.stats["board_resets"] == 1


def test_on_result_never_blocks_and_bounds_its_queue(tmp_path: Path) -> None:
    """No board at all: the agent keeps running, actions beyond the queue are dropped."""
    cfg = BridgeConfig(
        enabled=True,
        port=str(tmp_path / "missing"),
        timeout_s=0.1,
        rules=[OutputRule(label="face", pin=1, hold_ms=0)],
    )
    ticks = iter(range(10_000))
    comp = BridgeComponent(cfg, progress=lambda: 0, clock=lambda: float(next(ticks)))
    comp.start(FakeAgent())
    try:
        t0 = time.monotonic()
        for _ in range(200):
            comp.on_result(FrameRes(Res([Det("face", 0.99)])))
        assert time.monotonic() - t0 < 1.0
        assert comp.stats["actions_dropped"] > 0
        snap: dict[str, Any] = {}
        comp.contribute(snap)
        assert snap["bridge"]["connected"] is False
        assert wait_for(lambda: "cannot open serial port" in comp.status().get("last_error", ""))
    finally:
        comp.stop()


def test_check_bridge(sim: SimPort, tmp_path: Path) -> None:
    ok, msg = check_bridge(parse_config({"bridge": {"enabled": True, "port": sim.url}}))
    assert ok and "board edge-sim, firmware 1.0.0" in msg and "last reset power-on" in msg
    ok, msg = check_bridge(BridgeConfig(port=str(tmp_path / "nope")))
    assert not ok and msg.startswith(f"bridge: cannot open serial port {tmp_path / 'nope'}")


def test_default_components_include_the_bridge_when_enabled() -> None:
    from edge_agent.agent.runner_loader import RunnerLoader
    from edge_agent.app import components

    on = parse_config({"bridge": {"enabled": True, "port": "loop://"}})
    assert any(isinstance(c, BridgeComponent) for c in components(on, RunnerLoader(on)))
    off = parse_config({})
    assert not any(isinstance(c, BridgeComponent) for c in components(off, RunnerLoader(off)))


def test_real_agent_kicks_from_pipeline_progress_and_captures_on_trigger(
    sim: SimPort, tmp_path: Path
) -> None:
    """The real Agent (shipped model, synthetic camera): the watchdog is kicked from the
    pipeline's processed count, telemetry lands in the snapshot, a trigger saves a frame."""
    from edge_agent.agent.lifecycle import Agent

    cfg = parse_config(
        {
            "device": {"id": "bridge-test", "state_dir": str(tmp_path / "state")},
            "metrics": {"interval_s": 0.3},
            "bridge": {
                "enabled": True,
                "port": sim.url,
                "watchdog_timeout_ms": 1500,
                "stall_s": 5,
                "telemetry_interval_s": 0.2,
                "trigger_pin": 10,
                "trigger_debounce_ms": 0,
            },
        }
    )
    client = BridgeClient(sim.url, timeout_s=0.5)
    comp = BridgeComponent(cfg, client=client)
    agent = Agent(cfg, components=[comp])
    agent.build()
    done: list[dict[str, Any]] = []
    runner = threading.Thread(target=lambda: done.append(agent.run(duration=30)))
    runner.start()
    try:
        assert wait_for(lambda: comp.stats["kicks"] >= 3, timeout=20)
        assert wait_for(lambda: (agent.last_snapshot or {}).get("bridge", {}).get("power_w"))
        client.sim_input(10, 1)
        assert wait_for(lambda: comp.stats["captures"] == 1, timeout=10)
    finally:
        agent.request_stop("test done")
        runner.join(10)
    assert not runner.is_alive() and done
    bridge = agent.last_snapshot["bridge"] if agent.last_snapshot else {}
    assert bridge["board_resets"] == 0 and bridge["kicks_withheld"] == 0
    assert bridge["board_temp_c"] > 0 and bridge["accel_temp_c"] > 0
    saved = list((tmp_path / "state" / "captures").rglob("*.jpg"))
    assert len(saved) == 1


def test_worker_survives_a_failing_progress_counter(sim: SimPort) -> None:
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("pipeline counters not ready")
        return calls["n"]

    cfg = BridgeConfig(
        enabled=True, port=sim.url, watchdog_timeout_ms=600, telemetry_interval_s=0.1
    )
    comp = BridgeComponent(cfg, progress=flaky)
    comp.start(FakeAgent())
    try:
        assert wait_for(lambda: comp.stats["kicks"] >= 2)
        assert comp.stats["errors"] == 2 and comp.stats["board_resets"] == 0
    finally:
        comp.stop()
