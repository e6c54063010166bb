"""ThermalComponent: reads the sensors every ``[thermal] interval_s``, asks the governor
(:mod:`.thermal_governor`, pure) and applies its frame-rate cap to the pipeline
(``Pipeline.set_rate_cap``); the cap, its reason and the time spent capped go into the metrics
(``thermal``), hence the status, and each change is an event (``rate_limit``) on the
``events`` stream.

Readings: the SoC's thermal zones and the Raspberry Pi's throttled flags
(:mod:`.thermal_sensors`), and, when the firmware bridge runs, the board's and accelerator's
temperature and the board's power from its telemetry (``bridge`` is handed in by
:mod:`edge_agent.app`: a function returning the bridge's status).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..component import Component
from ..config import ThermalConfig
from .thermal_governor import Decision, Governor, GovernorPolicy, Reading
from .thermal_sensors import SensorReader, Throttled

log = logging.getLogger("edge_agent.thermal")

BRIDGE_SENSORS = (("board_temp_c", "bridge.board"), ("accel_temp_c", "bridge.accel"))
BRIDGE_MAX_AGE_S = 30.0  # older bridge telemetry is not a reading


class ThermalComponent(Component):
    name = "thermal"

    def __init__(
        self,
        config: ThermalConfig,
        *,
        bridge: Callable[[], dict[str, Any]] | None = None,
        publish: Callable[[str, dict[str, Any]], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.bridge = bridge
        self.publish = publish
        self.clock = clock
        self.reader = SensorReader(config.root, zones=tuple(config.zones),
                                   vcgencmd=config.vcgencmd)
        self.governor = Governor(GovernorPolicy(
            target_c=config.target_c, hysteresis_c=config.hysteresis_c,
            horizon_s=config.horizon_s, settle_s=config.settle_s, min_fps=config.min_fps,
            max_fps=config.max_fps, power_budget_w=config.power_budget_w,
        ))
        self.pipeline: Any = None
        self.last: Decision | None = None
        self.temps: dict[str, float] = {}
        self.power_w: float | None = None
        self.throttled: Throttled | None = None
        self.capped_s = 0.0
        self.changes = 0
        self._capped_at: float | None = None
        self._fps_mark: tuple[float, int] | None = None
        self._logged: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, agent: Any) -> None:
        self.pipeline = getattr(agent, "pipeline", None)
        self._thread = threading.Thread(target=self._loop, name="thermal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.config.interval_s):
            try:
                self.tick()
            except Exception:  # a governor that fails must not stop the agent
                log.exception("thermal governor tick failed")

    # -- one look --------------------------------------------------------------------------
    def _fps(self, now: float) -> float | None:
        p = self.pipeline
        if p is None:
            return None
        processed = int(p.counters()["processed"])
        mark, self._fps_mark = self._fps_mark, (now, processed)
        if mark is None or now <= mark[0]:
            return None
        return (processed - mark[1]) / (now - mark[0])

    def _bridge_reading(self, temps: dict[str, float]) -> float | None:
        if self.bridge is None:
            return None
        try:
            st = self.bridge()
        except Exception as exc:  # the bridge's status failing is no reason to stop governing
            self._problem("bridge", f"bridge status: {exc}")
            return None
        age = st.get("telemetry_age_s")
        if not isinstance(age, (int, float)) or age > BRIDGE_MAX_AGE_S:
            return None
        for key, name in BRIDGE_SENSORS:
            v = st.get(key)
            if isinstance(v, (int, float)):
                temps[name] = float(v)
        p = st.get("power_w")
        return float(p) if isinstance(p, (int, float)) else None

    def _problem(self, sensor: str, message: str) -> None:
        if self._logged.get(sensor) != message:
            self._logged[sensor] = message
            log.warning("thermal: %s (sensor skipped)", message)

    def tick(self) -> Decision:
        now = self.clock()
        temps = self.reader.temperatures()
        power = self._bridge_reading(temps)
        throttled = self.reader.throttled()
        for sensor, message in self.reader.problems.items():
            self._problem(sensor, message)
        for sensor in [k for k in self._logged if k != "bridge" and k not in self.reader.problems]:
            del self._logged[sensor]  # that sensor reads again
        fps = self._fps(now)
        d = self.governor.update(Reading(
            now, temps, power_w=power,
            throttled=bool(throttled and throttled.limiting),
            undervoltage=bool(throttled and throttled.now("undervoltage")),
            fps=fps,
        ))
        with self._lock:
            self.temps, self.power_w, self.throttled, self.last = temps, power, throttled, d
            if self._capped_at is not None:
                self.capped_s += now - self._capped_at
            self._capped_at = now if d.cap_fps is not None else None
        if d.changed:
            self.changes += 1
            if self.pipeline is not None:
                self.pipeline.set_rate_cap(d.cap_fps)
            cap = "lifted" if d.cap_fps is None else f"{d.cap_fps:.1f} fps"
            log.info("thermal: frame rate cap %s (%s)", cap, d.why)
            if self.publish is not None:
                try:
                    self.publish("events", {
                        "kind": "rate_limit", "cap_fps": _round(d.cap_fps),
                        "rate_limited_by": d.reason, "why": d.why,
                        "forecast_c": _round(d.forecast_c), "hottest": d.hottest,
                    })
                except Exception as exc:
                    log.warning("thermal: could not publish the rate_limit event: %s", exc)
        return d

    # -- metrics ---------------------------------------------------------------------------
    def contribute(self, snapshot: dict[str, Any]) -> None:
        snapshot["thermal"] = self.status()

    def status(self) -> dict[str, Any]:
        with self._lock:
            d = self.last
            capped = self.capped_s + (
                self.clock() - self._capped_at if self._capped_at is not None else 0.0
            )
            out: dict[str, Any] = {
                "cap_fps": _round(d.cap_fps) if d else None,
                "rate_limited_by": d.reason if d else None,
                "capped_s": round(capped, 1),
                "changes": self.changes,
                "forecast_c": _round(d.forecast_c) if d else None,
                "hottest": d.hottest if d else None,
                "temperatures_c": {k: round(v, 1) for k, v in self.temps.items()},
                "target_c": self.config.target_c,
            }
            if self.power_w is not None:
                out["power_w"] = round(self.power_w, 2)
            if self.throttled is not None:
                out["throttled"] = self.throttled.to_json()
            if self._logged:
                out["problems"] = dict(self._logged)
        return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)
