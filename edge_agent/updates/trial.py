"""Judging a trial model, as pure code: feed it observations, ask for a verdict.

A trial passes when ``inferences`` invokes ran (or ``seconds`` passed with enough of them)
without errors or non-finite outputs and with a p95 invoke latency no worse than
``max_latency_ratio`` times the old model's p95 (measured on the same device, in the same
pipeline, when the update began), with the median slower by the same ratio too (a few
scheduling spikes move the tail, a slower model moves everything); differences under
``MIN_SLOWDOWN_MS`` are noise, and the first ``WARMUP_SAMPLES`` invokes are not judged.
It fails at once on NaN/inf outputs or repeated errors.
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

    def decided(self, now: float) -> bool:
        """Whether :meth:`verdict` has an answer now (cheap: called after every inference)."""
        return bool(
            self.nonfinite
            or self.errors >= MAX_ERRORS
            or self.count >= self.policy.inferences
            or now - self.started >= self.policy.seconds
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
        elapsed = now - self.started
        enough = self.count >= pol.inferences
        if not enough and elapsed < pol.seconds:
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
