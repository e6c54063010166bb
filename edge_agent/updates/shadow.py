"""Shadow evaluation: the candidate model beside the active one on sampled live frames, before
the swap (the manifest's ``health.shadow``).

The trial judges a new model by latency, NaN/inf and errors only; a model that runs fast and
finds nothing passes it. Shadow evaluation compares what the candidate finds with what the
active model found *on the same live frames*, with the comparison core of ``models compare``
(:mod:`edge_agent.inference.agreement`), and the update goes on only if they agree.

Two parts:

* :class:`ShadowGate` and :func:`judge`, pure: which offered frame is sampled, which sampled
  frame is skipped (the shadow is still busy with the previous one, or has used its CPU
  budget), and the verdict from the figures.
* :class:`ShadowRun`, the threads: the pipeline's post thread hands each result to
  :meth:`ShadowRun.on_result`, which only decides and drops a reference into a one-frame slot
  (it never waits, so the active pipeline is never delayed: a frame the shadow cannot take is
  skipped and counted); the shadow's own thread, at a lower CPU priority (nice +10), runs the
  candidate on its own interpreter (one thread) and compares.

The CPU budget is a share of one core: after a shadow inference that used ``c`` s of CPU and
took ``w`` s, the next sampled frame is taken no sooner than ``c / budget - w`` s later.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..inference.agreement import AgreementTally, compare_results
from .cancel import Cancel
from .errors import ShadowDisagreement, ShadowFailed, ShadowIncomplete, UpdateError
from .manifest import Shadow

log = logging.getLogger("edge_agent.updates")

SHADOW_NICE = 10  # added to the shadow thread's nice value
MAX_SHADOW_ERRORS = 3


@dataclass
class ShadowGate:
    """Per-frame decision, as pure arithmetic. ``offered``: results handed in; ``sampled``:
    those the sample rate picks (every ``1 / sample_rate``-th, evenly spread); ``taken``:
    sampled frames given to the shadow; ``skipped``: sampled frames it could not take."""

    sample_rate: float
    cpu_budget: float
    offered: int = 0
    sampled: int = 0
    taken: int = 0
    skipped: int = 0
    ready_at: float = 0.0
    _acc: float = 0.0

    def offer(self, now: float, busy: bool) -> bool:
        """True: hand this frame to the shadow now."""
        self.offered += 1
        self._acc += self.sample_rate
        if self._acc < 1.0 - 1e-9:
            return False
        self._acc -= 1.0
        self.sampled += 1
        if busy or now < self.ready_at:
            self.skipped += 1
            return False
        self.taken += 1
        return True

    def spent(self, cpu_s: float, wall_s: float, now: float) -> None:
        """The shadow finished a frame that used ``cpu_s`` of CPU over ``wall_s``."""
        self.ready_at = now + max(0.0, cpu_s / self.cpu_budget - wall_s)


@dataclass(frozen=True)
class ShadowFigures:
    """What the update record and the metrics carry (``shadow: {...}``)."""

    kind: str
    frames: int
    agreement: float | None
    latency_ratio: float | None
    skipped: int
    sampled: int
    errors: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "frames": self.frames,
            "agreement": None if self.agreement is None else round(self.agreement, 4),
            "latency_ratio": None if self.latency_ratio is None else round(self.latency_ratio, 3),
            "skipped": self.skipped,
            "sampled": self.sampled,
        }
        if self.errors:
            out["errors"] = self.errors
        return out


@dataclass(frozen=True)
class ShadowOutcome:
    figures: ShadowFigures
    decided: bool  # False: cancelled or stopped before a verdict
    rejection: UpdateError | None  # None with ``decided``: the candidate agrees


def judge(
    policy: Shadow, fig: ShadowFigures, elapsed_s: float, mismatch: str = ""
) -> UpdateError | None:
    """Once :func:`decided`: None when the candidate agrees, else the rejection."""
    if mismatch:
        return ShadowDisagreement(f"shadow: {mismatch}")
    if fig.errors >= MAX_SHADOW_ERRORS:
        return ShadowFailed(
            f"shadow: the candidate failed on {fig.errors} of {fig.frames + fig.errors} frames"
        )
    if fig.frames >= policy.min_frames:
        if fig.agreement is None:
            return ShadowIncomplete(
                f"shadow: {fig.kind} results carry nothing to compare; "
                "publish without --shadow or with a decoder that detects, classifies or segments"
            )
        if fig.agreement < policy.min_agreement:
            return ShadowDisagreement(
                f"shadow: agreement {fig.agreement:.3f} with the active model over {fig.frames} "
                f"frames is under the minimum {policy.min_agreement:g}"
            )
        return None
    if elapsed_s >= policy.max_seconds:
        return ShadowIncomplete(
            f"shadow: only {fig.frames} of {policy.min_frames} frames compared in "
            f"{policy.max_seconds:g} s ({fig.skipped} skipped over the CPU budget "
            f"{policy.cpu_budget:g}); is the camera delivering frames?"
        )
    return None


def decided(policy: Shadow, fig: ShadowFigures, elapsed_s: float, mismatch: str = "") -> bool:
    return bool(
        mismatch
        or fig.errors >= MAX_SHADOW_ERRORS
        or fig.frames >= policy.min_frames
        or elapsed_s >= policy.max_seconds
    )


def lower_priority(nice: int = SHADOW_NICE) -> None:
    """Lower the calling thread's CPU priority (Linux: ``setpriority`` on the thread id)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (OSError, AttributeError) as exc:  # not Linux, or not permitted: run at the same one
        log.debug("shadow thread priority unchanged: %s", exc)


class ShadowRun:
    """One shadow evaluation: :meth:`start`, feed :meth:`on_result`, :meth:`wait`."""

    def __init__(
        self,
        runner: Any,
        policy: Shadow,
        *,
        active_latencies_ms: Callable[[], list[float]] = list,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runner = runner
        self.policy = policy
        self.active_latencies_ms = active_latencies_ms
        self.clock = clock
        self.gate = ShadowGate(policy.sample_rate, policy.cpu_budget)
        self.tally: AgreementTally | None = None
        self.latencies_ms: list[float] = []
        self.errors = 0
        self.last_error = ""
        self.mismatch = ""
        self.started = 0.0
        self._lock = threading.Lock()
        self._pending: tuple[np.ndarray, Any] | None = None
        self._busy = False
        self._wake = threading.Event()  # a frame is pending, or stop
        self._changed = threading.Event()  # the figures changed (wait() re-judges)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the pipeline's side (post thread): never waits -----------------------------------------
    def on_result(self, fr: Any) -> None:
        if self._stop.is_set() or not getattr(fr, "ok", False) or fr.image is None:
            return
        with self._lock:
            if self.gate.offer(self.clock(), self._busy or self._pending is not None):
                self._pending = (fr.image, fr.result)
                self._wake.set()

    # -- the shadow thread ----------------------------------------------------------------------
    def start(self) -> ShadowRun:
        self.started = self.clock()
        self._thread = threading.Thread(target=self._loop, name="updates-shadow", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        lower_priority()
        while not self._stop.is_set():
            self._wake.wait(0.5)
            with self._lock:
                item, self._pending = self._pending, None
                self._wake.clear()
                self._busy = item is not None
            if item is None:
                continue
            try:
                self._one(*item)
            finally:
                with self._lock:
                    self._busy = False
                self._changed.set()

    def _one(self, image: np.ndarray, active: Any) -> None:
        c0, w0 = time.thread_time(), self.clock()
        try:
            result, times = self.runner.run(image)
        except Exception as exc:  # the candidate fails on a live frame: counted, judged
            self.errors += 1
            self.last_error = str(exc)
            log.warning("shadow: the candidate failed on a frame: %s", exc)
            result = None
        now = self.clock()
        with self._lock:
            self.gate.spent(time.thread_time() - c0, now - w0, now)
        if result is None:
            return
        self.latencies_ms.append(times.invoke * 1000)
        try:
            agree = compare_results(active, result)
        except ValueError as exc:  # results of different kinds: nothing agrees
            self.mismatch = f"the candidate's results do not compare with the active's ({exc})"
            return
        with self._lock:
            if self.tally is None:
                self.tally = AgreementTally(agree.kind)
            self.tally.add(agree)

    @property
    def busy(self) -> bool:
        """A frame is waiting for the shadow thread or being run (a new one would be skipped)."""
        with self._lock:
            return self._busy or self._pending is not None

    # -- the updater's side ---------------------------------------------------------------------
    def figures(self) -> ShadowFigures:
        with self._lock:
            tally = self.tally
            skipped, sampled = self.gate.skipped, self.gate.sampled
            kind = tally.kind if tally else ""
            frames = tally.frames if tally else 0
            agreement = tally.agreement() if tally else None
            detail = tally.summary() if tally else {}
        ratio = None
        active = self.active_latencies_ms()
        if self.latencies_ms and active:
            base = float(np.median(active))
            ratio = float(np.median(self.latencies_ms)) / base if base > 0 else None
        return ShadowFigures(
            kind=kind,
            frames=frames,
            agreement=agreement,
            latency_ratio=ratio,
            skipped=skipped,
            sampled=sampled,
            errors=self.errors,
            detail=detail,
        )

    def wait(self, cancel: Cancel | None = None) -> ShadowOutcome:
        """Until the verdict, the cancel token or :meth:`close` (then ``decided`` is False)."""
        while True:
            fig = self.figures()
            elapsed = self.clock() - self.started
            if decided(self.policy, fig, elapsed, self.mismatch):
                return ShadowOutcome(fig, True, judge(self.policy, fig, elapsed, self.mismatch))
            if self._stop.is_set() or (cancel is not None and cancel.is_set()):
                return ShadowOutcome(fig, False, None)
            left = self.policy.max_seconds - elapsed
            self._changed.wait(max(0.01, min(left, 0.5)))
            self._changed.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._changed.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(2.0)
