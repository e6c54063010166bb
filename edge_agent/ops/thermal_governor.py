"""The frame-rate governor, as pure code: readings in, a frame-rate cap and its reason out.

Boards throttle silently: a Raspberry Pi caps its clock at 80-85 °C and the frame rate
collapses unannounced. The governor lowers the frame rate *before* that, on a forecast (the
anchor is Android's thermal headroom API: act on where the temperature is going, not on the
limit), and gives it back with hysteresis once the board is cool:

- forecast = hottest temperature + its smoothed slope (°C/s, only when rising) x ``horizon_s``;
- **over** when the forecast reaches ``target_c``, when the SoC reports it is throttled, capped
  or at its soft temperature limit (reason ``thermal``), when it reports under-voltage
  (``undervoltage``), or when the board's power is above ``power_budget_w`` (``power``): the
  cap goes down by a step proportional to the overshoot (10 %..50 %), at most once per
  ``settle_s`` (so a step shows in the temperature before the next one);
- **clear** when the forecast and the temperature are both ``hysteresis_c`` under the target,
  no flag is set and the power is under 90 % of its budget, for ``settle_s``: the cap goes up
  by 10 %; at the uncapped rate the cap is lifted;
- in between (the dead band) the cap holds: that is what keeps it from oscillating.

No clock, no files, no threads: :meth:`Governor.update` takes one :class:`Reading`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STEP_UP = 1.10
MIN_STEP_DOWN = 0.90  # the smallest cut: x0.9
MAX_STEP_DOWN = 0.50  # the largest: x0.5
FLAG_STEP_DOWN = 0.75  # throttled / under-voltage / power: no overshoot to scale by
SLOPE_SMOOTHING = 0.3  # EWMA weight of a new slope sample
POWER_CLEAR = 0.9


@dataclass(frozen=True)
class GovernorPolicy:
    target_c: float = 75.0
    hysteresis_c: float = 5.0
    horizon_s: float = 10.0
    settle_s: float = 5.0
    min_fps: float = 1.0
    max_fps: float | None = None  # the uncapped rate (None: the rate measured when capping)
    power_budget_w: float | None = None


@dataclass(frozen=True)
class Reading:
    """One look at the sensors. ``temps_c``: sensor name -> °C; ``fps``: frames processed per
    second now (what the first cap is a share of)."""

    t: float
    temps_c: dict[str, float] = field(default_factory=dict)
    power_w: float | None = None
    throttled: bool = False  # the SoC is throttled, capped or at its soft limit now
    undervoltage: bool = False  # under-voltage now
    fps: float | None = None


@dataclass(frozen=True)
class Decision:
    cap_fps: float | None  # None: not capped
    reason: str | None  # thermal | power | undervoltage while capped
    forecast_c: float | None
    hottest: str | None
    changed: bool  # the cap moved at this reading
    why: str  # one line for the log and the event


class Governor:
    def __init__(self, policy: GovernorPolicy) -> None:
        self.policy = policy
        self.cap: float | None = None
        self.reason: str | None = None
        self.reference_fps: float | None = policy.max_fps
        self._last_t: float | None = None
        self._last_temp: dict[str, float] = {}
        self._slope: dict[str, float] = {}
        self._last_change = float("-inf")
        self._clear_since: float | None = None

    def _forecast(self, r: Reading) -> tuple[float | None, str | None, float | None]:
        """(forecast, hottest sensor, its temperature) from the readings and their slopes."""
        dt = r.t - self._last_t if self._last_t is not None else 0.0
        best: tuple[float, str, float] | None = None
        for name, temp in r.temps_c.items():
            prev = self._last_temp.get(name)
            if prev is not None and dt > 0:
                sample = (temp - prev) / dt
                old = self._slope.get(name, sample)
                self._slope[name] = old + SLOPE_SMOOTHING * (sample - old)
            rising = max(0.0, self._slope.get(name, 0.0))
            f = temp + rising * self.policy.horizon_s
            if best is None or f > best[0]:
                best = (f, name, temp)
        self._last_temp = dict(r.temps_c)
        self._last_t = r.t
        if best is None:
            return None, None, None
        return best

    def update(self, r: Reading) -> Decision:
        p = self.policy
        forecast, hottest, temp = self._forecast(r)
        over_power = (
            p.power_budget_w is not None and r.power_w is not None and r.power_w > p.power_budget_w
        )
        over_temp = forecast is not None and forecast >= p.target_c
        reason = None
        if r.undervoltage:
            reason = "undervoltage"
        elif over_temp or r.throttled:
            reason = "thermal"
        elif over_power:
            reason = "power"
        settled = r.t - self._last_change >= p.settle_s
        if reason is not None:
            self._clear_since = None
            if not settled:
                return self._decision(forecast, hottest, False, f"{reason}: settling")
            base = self.cap if self.cap is not None else (r.fps or self.reference_fps)
            if base is None:
                return self._decision(forecast, hottest, False, f"{reason}: no frame rate yet")
            if self.cap is None and self.reference_fps is None:
                self.reference_fps = base
            if reason == "thermal" and over_temp and forecast is not None:
                over = (forecast - p.target_c) / max(p.hysteresis_c, 0.1)
                factor = min(MIN_STEP_DOWN, max(MAX_STEP_DOWN, 1.0 - 0.2 * (1.0 + over)))
            else:
                factor = FLAG_STEP_DOWN
            new = max(p.min_fps, base * factor)
            why = self._why(reason, forecast, temp, hottest, r)
            if self.cap is not None and new >= self.cap:  # already at the floor
                self.reason = reason
                return self._decision(forecast, hottest, False, why)
            self.cap, self.reason = new, reason
            self._last_change = r.t
            return self._decision(forecast, hottest, True, why)
        clear = (
            (forecast is None or forecast < p.target_c - p.hysteresis_c)
            and (temp is None or temp < p.target_c - p.hysteresis_c)
            and not (
                p.power_budget_w is not None
                and r.power_w is not None
                and r.power_w > POWER_CLEAR * p.power_budget_w
            )
        )
        if self.cap is None:
            return self._decision(forecast, hottest, False, "not capped")
        if not clear:
            self._clear_since = None
            return self._decision(forecast, hottest, False, "holding in the dead band")
        if self._clear_since is None:
            self._clear_since = r.t
        if r.t - self._clear_since < p.settle_s or not settled:
            return self._decision(forecast, hottest, False, "cool: waiting to restore")
        new = self.cap * STEP_UP
        self._last_change = r.t
        self._clear_since = r.t
        ref = self.reference_fps
        if ref is not None and new >= ref:
            self.cap, self.reason = None, None
            if p.max_fps is None:
                self.reference_fps = None
            return self._decision(forecast, hottest, True, "cool again: cap lifted")
        self.cap = new
        return self._decision(forecast, hottest, True, f"cool: cap raised to {new:.1f} fps")

    def _why(
        self, reason: str, forecast: float | None, temp: float | None, hottest: str | None,
        r: Reading,
    ) -> str:
        if reason == "undervoltage":
            return "the board reports under-voltage"
        if reason == "power":
            return f"board power {r.power_w:.1f} W over the {self.policy.power_budget_w:g} W budget"
        if r.throttled and not (forecast is not None and forecast >= self.policy.target_c):
            return "the SoC reports it is throttled / at its soft temperature limit"
        return (
            f"{hottest} at {temp:.1f} °C heading for {forecast:.1f} °C in "
            f"{self.policy.horizon_s:g} s (target {self.policy.target_c:g} °C)"
        )

    def _decision(
        self, forecast: float | None, hottest: str | None, changed: bool, why: str
    ) -> Decision:
        return Decision(self.cap, self.reason if self.cap is not None else None,
                        forecast, hottest, changed, why)
