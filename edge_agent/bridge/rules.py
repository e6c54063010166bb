"""The bridge's pure logic: when to kick the board watchdog, which GPIO outputs inference
results fire, whether the board reset. No I/O, no threads; the component (:mod:`.component`)
feeds them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..config import OutputRule


class ProgressGate:
    """Kick the watchdog only while the progress counter moved within the last ``stall_s``.

    The first observation starts the grace period (model loading counts as progress)."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._last_value: int | None = None
        self._last_change: float | None = None

    def should_kick(self, value: int | None, now: float) -> bool:
        if self._last_change is None or (value is not None and value != self._last_value):
            self._last_change = now
            self._last_value = value
        return now - self._last_change < self.stall_s

    def stalled_for(self, now: float) -> float:
        return 0.0 if self._last_change is None else now - self._last_change


@dataclass(frozen=True)
class GpioAction:
    pin: int
    value: int
    hold_ms: int
    label: str
    score: float


class OutputRules:
    """Inference results -> GPIO actions. A rule re-fires at most every half hold time (so a
    held output is extended before it lapses), or every second for ``hold_ms = 0``."""

    def __init__(self, rules: Iterable[OutputRule]) -> None:
        self.rules = list(rules)
        self._last_fire: dict[int, float] = {}

    def evaluate(self, pairs: Iterable[tuple[str, float]], now: float) -> list[GpioAction]:
        best: dict[str, float] = {}
        for label, score in pairs:
            if score > best.get(label, -1.0):
                best[label] = score
        out = []
        for i, rule in enumerate(self.rules):
            top = best.get(rule.label)
            if top is None or top < rule.min_score:
                continue
            every = rule.hold_ms / 2000 if rule.hold_ms else 1.0
            last = self._last_fire.get(i)
            if last is not None and now - last < every:
                continue
            self._last_fire[i] = now
            out.append(GpioAction(rule.pin, rule.value, rule.hold_ms, rule.label, top))
        return out


def labels_and_scores(frame_result: Any) -> list[tuple[str, float]]:
    """(label, score) of every detection and class of a pipeline FrameResult or a Result."""
    result = getattr(frame_result, "result", frame_result)
    if result is None or getattr(frame_result, "error", None):
        return []
    pairs = []
    for item in [*getattr(result, "detections", ()), *getattr(result, "classes", ())]:
        label, score = getattr(item, "label", None), getattr(item, "score", None)
        if label is not None and score is not None:
            pairs.append((str(label), float(score)))
    return pairs


UPTIME_WRAP_S = 0xFFFFFFFF / 1000  # the board counts its uptime in u32 milliseconds


def uptime_went_back(before_s: float, now_s: float) -> bool:
    """The board's uptime went backwards: it reset. Not when its u32 ms counter wrapped
    (after 49.7 days: ``before_s`` within a minute of the wrap)."""
    return now_s < before_s and before_s < UPTIME_WRAP_S - 60
