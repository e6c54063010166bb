"""Judging a trial model, as pure code: feed it observations, ask for a verdict.

A trial passes when ``inferences`` invokes ran (or ``seconds`` passed with enough of them)
without errors or non-finite outputs and with a p95 invoke latency no worse than
``max_latency_ratio`` times the old model's p95 (measured on the same device, in the same
pipeline, when the update began), with the median slower by the same ratio too (a few
scheduling spikes move the tail, a slower model moves everything); differences under
``MIN_SLOWDOWN_MS`` are noise, and the first ``WARMUP_SAMPLES`` invokes are not judged.
It fails at once on NaN/inf outputs or repeated errors.

The window counts only time in which the camera delivers frames: while the source is down
(:meth:`TrialMonitor.source_down`) the window stands still, so an update started while the
camera is missing waits for it instead of failing ``no_inferences``. A camera still missing
after ``camera_wait_s`` (or a finite source that has ended) ends the trial
``camera_unavailable``: the model could not be judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SAMPLES = 10
MAX_ERRORS = 3
MIN_SLOWDOWN_MS = 1.0  # below this a p95 difference is scheduling noise, not a slower model
WARMUP_SAMPLES = 3  # the first invokes after the swap (cold caches) are not judged on latency


@dataclass(frozen=True)
class TrialPolicy:
    inferences: int
    seconds: float
    max_latency_ratio: float = 2.0
    baseline_p95_ms: float | None = None
    baseline_p50_ms: float | None = None
    camera_wait_s: float = 300.0


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str
    detail: str


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else 0.0


def p50(values: list[float]) -> float:
    return float(np.percentile(values, 50)) if values else 0.0


class TrialMonitor:
    """Observations of one trial; :meth:`verdict` is None while it is undecided."""

    def __init__(self, policy: TrialPolicy, started: float) -> None:
        self.policy = policy
        self.started = started
        self.latencies_ms: list[float] = []
        self.nonfinite = 0
        self.errors = 0
        self.last_error = ""
        self.paused_s = 0.0  # window time the source was down (not counted)
        self.down_since: float | None = None
        self.down_why = ""
        self.source_ended = False

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    def record(self, latency_ms: float, finite: bool = True) -> None:
        if len(self.latencies_ms) < max(self.policy.inferences, MIN_SAMPLES) * 4:
            self.latencies_ms.append(latency_ms)
        if not finite:
            self.nonfinite += 1

    def record_nonfinite(self) -> None:
        self.nonfinite += 1

    def record_error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message

    def source_down(self, now: float, why: str, *, ended: bool = False) -> None:
        """The camera delivers no frames (since ``now``; ``ended``: a finite source that will
        never deliver again). The window stands still until :meth:`source_up`."""
        if self.down_since is None:
            self.down_since = now
        self.down_why = why
        self.source_ended = self.source_ended or ended

    def source_up(self, now: float) -> None:
        if self.down_since is not None:
            self.paused_s += max(now - self.down_since, 0.0)
            self.down_since = None

    def elapsed(self, now: float) -> float:
        """Window time so far: wall time since the start less the time the source was down."""
        down = 0.0 if self.down_since is None else max(now - self.down_since, 0.0)
        return now - self.started - self.paused_s - down

    def next_deadline(self) -> float:
        """When the monitor decides at the latest without any new observation."""
        if self.down_since is not None:
            return self.down_since + self.policy.camera_wait_s
        return self.started + self.paused_s + self.policy.seconds

    def _camera_gone(self, now: float) -> bool:
        return self.down_since is not None and (
            self.source_ended or now - self.down_since >= self.policy.camera_wait_s
        )

    def decided(self, now: float) -> bool:
        """Whether :meth:`verdict` has an answer now (cheap: called after every inference)."""
        return bool(
            self.nonfinite
            or self.errors >= MAX_ERRORS
            or self.count >= self.policy.inferences
            or self._camera_gone(now)
            or (self.down_since is None and self.elapsed(now) >= self.policy.seconds)
        )

    def verdict(self, now: float) -> Verdict | None:
        pol = self.policy
        if self.nonfinite:
            return Verdict(
                False,
                "nonfinite_outputs",
                f"model produced NaN/inf outputs in {self.nonfinite} of {self.count} inferences",
            )
        if self.errors >= MAX_ERRORS:
            return Verdict(
                False, "errors", f"{self.errors} inference errors in trial: {self.last_error}"
            )
        elapsed = self.elapsed(now)
        enough = self.count >= pol.inferences
        if not enough and self._camera_gone(now):
            assert self.down_since is not None
            gone = "ended" if self.source_ended else (
                f"delivered no frames for {now - self.down_since:.0f} s"
            )
            return Verdict(
                False,
                "camera_unavailable",
                f"the camera {gone} during the trial ({self.down_why}); the model could not be "
                f"judged ({self.count} inferences; [updates] trial_camera_wait_s)",
            )
        if not enough and (self.down_since is not None or elapsed < pol.seconds):
            return None
        if self.count < min(MIN_SAMPLES, pol.inferences):
            return Verdict(
                False,
                "no_inferences",
                f"only {self.count} inferences in the {pol.seconds:g} s trial window",
            )
        judged = self.latencies_ms[WARMUP_SAMPLES:] or self.latencies_ms
        new, new50 = p95(judged), p50(judged)
        if pol.baseline_p95_ms:
            ratio = new / pol.baseline_p95_ms
            ratio50 = new50 / pol.baseline_p50_ms if pol.baseline_p50_ms else ratio
            limit = pol.max_latency_ratio
            # slower = the whole distribution moved, not a few scheduling spikes in the tail
            if ratio > limit and ratio50 > limit and new - pol.baseline_p95_ms > MIN_SLOWDOWN_MS:
                return Verdict(
                    False,
                    "slower",
                    f"p95 invoke {new:.2f} ms is {ratio:.1f}x the previous model's "
                    f"{pol.baseline_p95_ms:.2f} ms (median {ratio50:.1f}x; limit {limit:g}x)",
                )
        base = f" vs {pol.baseline_p95_ms:.2f} ms" if pol.baseline_p95_ms else ""
        return Verdict(
            True,
            "healthy",
            f"{self.count} inferences in {elapsed:.1f} s, p95 invoke {new:.2f} ms{base}, "
            f"{self.errors} errors",
        )
