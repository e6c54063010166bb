"""The frame-rate governor (pure), its sensor readers against a fake sysfs tree, and the
component between them; a closed loop with a first-order board model shows no oscillation."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import ThermalConfig
from edge_agent.ops.status import render, summarize
from edge_agent.ops.thermal import ThermalComponent
from edge_agent.ops.thermal_governor import Governor, GovernorPolicy, Reading
from edge_agent.ops.thermal_sensors import (
    THERMAL_DIR,
    THROTTLED_NODE,
    SensorError,
    SensorReader,
    parse_throttled,
)
from tests.support.thermal import cap_moves, reversals

P = GovernorPolicy(target_c=70, hysteresis_c=5, horizon_s=3, settle_s=2, min_fps=2)


def reading(t: float, temp: float, fps: float | None = 30.0, **kw: Any) -> Reading:
    return Reading(t, {"cpu-thermal": temp}, fps=fps, **kw)


class TestGovernor:
    def test_caps_on_the_forecast_before_the_target(self) -> None:
        g = Governor(P)
        assert g.update(reading(0, 60)).cap_fps is None
        d = g.update(reading(1, 63))  # 3 °C/s: 63 + 0.3*3*3... forecast over 70 already
        assert d.changed and d.reason == "thermal" and d.cap_fps is not None
        assert 15 <= d.cap_fps < 30 and d.forecast_c is not None and d.forecast_c >= 70
        assert "cpu-thermal at 63.0 °C heading for" in d.why

    def test_steady_below_target_is_not_capped(self) -> None:
        g = Governor(P)
        for t in range(20):
            assert g.update(reading(t, 69.0)).cap_fps is None

    def test_settle_between_steps_and_floor(self) -> None:
        g = Governor(P)
        caps = [g.update(reading(t * 0.5, 95.0)).cap_fps for t in range(40)]
        changes = [i for i in range(1, 40) if caps[i] != caps[i - 1]]
        assert all(b - a >= 4 for a, b in itertools.pairwise(changes))  # 2 s
        assert caps[-1] == 2.0  # never under min_fps

    def test_dead_band_holds_and_cool_restores_then_lifts(self) -> None:
        g = Governor(P)
        capped = g.update(reading(0, 75)).cap_fps  # no slope yet: the forecast is 75 °C
        assert capped == 18.0
        for t in range(2, 12):  # 67 °C: under the target, inside the hysteresis band: hold
            d = g.update(reading(t, 67, fps=capped))
            assert d.cap_fps == capped and not d.changed
        caps = [g.update(reading(t, 50, fps=g.cap)).cap_fps for t in range(12, 60)]
        assert caps[-1] is None  # cool long enough: lifted
        raised = [c for c in caps if c is not None]
        assert raised == sorted(raised) and g.reason is None

    def test_flags_and_power(self) -> None:
        assert Governor(P).update(reading(0, 40, undervoltage=True)).reason == "undervoltage"
        assert Governor(P).update(reading(0, 40, throttled=True)).reason == "thermal"
        pp = GovernorPolicy(power_budget_w=5.0)
        d = Governor(pp).update(reading(0, 40, power_w=6.5))
        assert d.reason == "power" and d.cap_fps == 22.5 and "6.5 W over the 5 W" in d.why
        assert Governor(pp).update(reading(0, 40, power_w=4.0)).cap_fps is None

    def test_no_frame_rate_yet_waits(self) -> None:
        d = Governor(P).update(reading(0, 90, fps=None))
        assert d.cap_fps is None and "no frame rate" in d.why

    def test_closed_loop_holds_under_target_without_oscillating(self) -> None:
        """Board model: steady state 40 °C + 1.5 °C per frame/s (30 fps -> 85 °C), tau 3 s."""
        g = Governor(P)
        temp, dt, trace = 40.0, 0.2, []
        for i in range(int(90 / dt)):
            fps = min(30.0, g.cap or 30.0)
            d = g.update(reading(i * dt, temp, fps=fps))
            temp += (40 + 1.5 * fps - temp) * dt / (3.0 + dt)
            trace.append((i * dt, temp, d.cap_fps))
        print("\n".join(f"{t:5.1f} s {x:5.1f} °C cap {c}" for t, x, c in trace[::25]))
        assert max(x for _, x, _ in trace) < 70.0
        caps = [c for _, _, c in trace if c is not None]
        assert reversals(caps) <= 1, cap_moves(caps)
        assert len({c for _, _, c in trace[-200:]}) == 1  # the last 40 s: one cap, held


def fake_sysfs(root: Path, zones: dict[str, str], throttled: str | None = None) -> Path:
    for i, (kind, temp) in enumerate(zones.items()):
        z = root / THERMAL_DIR / f"thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(temp + "\n")
    if throttled is not None:
        node = root / THROTTLED_NODE
        node.parent.mkdir(parents=True, exist_ok=True)
        node.write_text(throttled + "\n")
    return root


class TestSensors:
    def test_zones_by_type_and_filter(self, tmp_path: Path) -> None:
        root = fake_sysfs(tmp_path, {"cpu-thermal": "61234", "gpu-thermal": "55000"})
        assert SensorReader(root, vcgencmd=False).temperatures() == {
            "cpu-thermal": 61.234, "gpu-thermal": 55.0}
        only = SensorReader(root, zones=("gpu-thermal",), vcgencmd=False)
        assert only.temperatures() == {"gpu-thermal": 55.0}

    def test_garbage_is_a_problem_not_a_reading(self, tmp_path: Path) -> None:
        root = fake_sysfs(tmp_path, {"cpu-thermal": "hot", "soc": "999999", "ok": "40000"})
        r = SensorReader(root, vcgencmd=False)
        assert r.temperatures() == {"ok": 40.0}
        assert "'hot' is not millidegrees" in r.problems["cpu-thermal"]
        assert "plausible" in r.problems["soc"]
        assert str(root) in r.problems["cpu-thermal"]  # where

    def test_no_sensors_at_all(self, tmp_path: Path) -> None:
        r = SensorReader(tmp_path, vcgencmd=False)
        assert r.temperatures() == {} and r.throttled() is None and r.problems == {}

    def test_throttled_node(self, tmp_path: Path) -> None:
        root = fake_sysfs(tmp_path, {}, throttled="0x50005")
        t = SensorReader(root, vcgencmd=False).throttled()
        assert t is not None and t.now("undervoltage") and t.now("throttled")
        assert not t.now("freq_capped") and t.since_boot("undervoltage") and t.limiting
        assert t.to_json() == {"raw": "0x50005", "now": ["undervoltage", "throttled"],
                               "since_boot": ["undervoltage", "throttled"]}

    def test_parse_throttled(self) -> None:
        assert parse_throttled("throttled=0x80000", "x").since_boot("soft_temp_limit")
        assert not parse_throttled("0", "x").limiting
        with pytest.raises(SensorError, match="vcgencmd: 'nope' is not a hex"):
            parse_throttled("nope", "vcgencmd")


class TestComponent:
    def cfg(self, root: Path, **kw: Any) -> ThermalConfig:
        return ThermalConfig(enabled=True, root=root, vcgencmd=False, target_c=70,
                             hysteresis_c=5, horizon_s=0, settle_s=0, max_fps=30, **kw)

    def test_cap_reason_in_metrics_status_and_an_event(self, tmp_path: Path) -> None:
        root = fake_sysfs(tmp_path, {"cpu-thermal": "50000"})
        events: list[tuple[str, dict[str, Any]]] = []
        c = ThermalComponent(self.cfg(root), publish=lambda s, p: events.append((s, p)))
        assert c.tick().cap_fps is None
        (root / THERMAL_DIR / "thermal_zone0" / "temp").write_text("72000")
        d = c.tick()
        # 2 °C over with a 5 °C band: a cut of 0.2 * (1 + 2/5) = 28 %
        assert d.cap_fps == pytest.approx(21.6) and d.reason == "thermal"
        snap: dict[str, Any] = {}
        c.contribute(snap)
        th = snap["thermal"]
        assert th["cap_fps"] == 21.6 and th["rate_limited_by"] == "thermal"
        assert th["temperatures_c"] == {"cpu-thermal": 72.0} and th["hottest"] == "cpu-thermal"
        assert events == [("events", {
            "kind": "rate_limit", "cap_fps": 21.6, "rate_limited_by": "thermal",
            "why": d.why, "forecast_c": 72.0, "hottest": "cpu-thermal"})]
        text = render(summarize(snap, {}, state="running", pid=1), running=True)
        assert "thermal: capped at 21.6 fps by thermal" in text

    def test_bridge_board_temperature_and_power(self, tmp_path: Path) -> None:
        def bridge() -> dict[str, Any]:
            return {"board_temp_c": 80.0, "accel_temp_c": 60.0, "power_w": 9.0,
                    "telemetry_age_s": 0.5}
        c = ThermalComponent(self.cfg(tmp_path, power_budget_w=20.0), bridge=bridge)
        d = c.tick()
        assert d.reason == "thermal" and d.hottest == "bridge.board"
        assert c.status()["power_w"] == 9.0

    def test_stale_bridge_telemetry_and_a_failing_bridge_are_no_readings(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        c = ThermalComponent(self.cfg(tmp_path), bridge=lambda: {"board_temp_c": 99.0,
                                                                 "telemetry_age_s": 300.0})
        assert c.tick().cap_fps is None and c.status()["temperatures_c"] == {}

        def broken() -> dict[str, Any]:
            raise OSError("port gone")
        c = ThermalComponent(self.cfg(tmp_path), bridge=broken)
        c.tick()
        c.tick()
        assert c.status()["problems"] == {"bridge": "bridge status: port gone"}
        assert caplog.text.count("port gone") == 1  # said once, not every second
