"""Economy: one interpreter thread while the camera leaves the pipeline idle most of the time
(pure logic; the pipeline feeds it and applies what it says).

At camera rate an interpreter with ``threads = cores`` wakes its thread pool and waits for it on
every parallel operator; when the frames come far slower than it can run them, one thread does
the same work for less CPU. Measured on 2 cores (``benchmarks/pipeline.py``'s camera-rate case,
BlazeFace int8 on the demo clip, threads = 2, 5 runs with both agents and the naive loops
running at the same time): the agent's CPU per frame with economy on / off 0.864 at 15 fps and
0.852 at 30 fps; the naive loop on 1 thread / on 2, 0.859 and 0.846. A model this small even
invokes faster on one thread here (p50 1.10 against 1.65 ms); a larger one invokes more
slowly (MobileNetV2 int8: 3.6 against 2.5 ms, 1.4x, one measurement), so economy only runs
while the one-thread invoke is projected to leave half of the time idle.

The decision is taken once per window (:data:`WINDOW_S` of wall time and at least
:data:`MIN_FRAMES` frames) from what the thread that invokes measured in it:

* ``busy_s``: the time that thread spent on frames (``serial``: preprocess + invoke +
  postprocess; ``overlap``: the invoke and its copies), ``invoke_s`` the invokes alone;
* ``stale``: frames the camera delivered that were replaced before the pipeline took them.

Full threads -> economy when the projected occupancy with one thread, ``(busy_s + (k - 1) *
invoke_s) / elapsed_s``, is at most :data:`ENTER_AT` and no frame went stale. ``k`` is the
one-thread slowdown: measured on this model once both counts have run, assumed ``threads``
(no parallel speed-up lost) before that.

Economy -> full threads when the measured occupancy is over :data:`LEAVE_AT` or more than
:data:`MAX_STALE_SHARE` of the frames went stale (the camera got faster, the board slower, or
the model heavier than projected). After leaving, economy is not tried again for
:data:`HOLD_S` seconds (doubled at each leave, up to :data:`HOLD_MAX_S`), and then only with
the measured ``k``: no flapping. ``k`` is the fastest one-thread invoke seen over the fastest
full-thread one (per window means): the model's own slowdown, not a moment of contention.

A model swap starts over on full threads (:meth:`Economy.reset`); a model under trial after an
update keeps its full threads, so it is judged on the latency the old one was measured at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EconomySetting = Literal["auto", "off"]
WINDOW_S = 2.0
MIN_FRAMES = 10
ENTER_AT = 0.5
LEAVE_AT = 0.75
MAX_STALE_SHARE = 0.02
HOLD_S = 60.0
HOLD_MAX_S = 16 * HOLD_S


@dataclass(frozen=True)
class Window:
    """What the invoking thread measured over one window."""

    elapsed_s: float
    frames: int
    busy_s: float
    invoke_s: float
    stale: int = 0


@dataclass
class Economy:
    """The economy state of one pipeline: which thread count to run, and why."""

    threads: int  # the configured count (full)
    setting: EconomySetting = "auto"
    active: bool = False
    slowdown: float | None = None  # measured one-thread invoke / full-thread invoke
    reason: str = ""
    switches: int = 0
    leaves: int = 0
    _hold_until: float = 0.0
    _invoke_full: float | None = None
    _invoke_one: float | None = None

    def __post_init__(self) -> None:
        if self.setting not in ("auto", "off"):
            raise ValueError(f"unknown pipeline economy {self.setting!r}; use auto or off")
        if self.threads < 2:
            self.reason = "the interpreter runs on 1 thread"
        elif self.setting == "off":
            self.reason = "off (pipeline.economy)"
        else:
            self.reason = "not measured yet"

    @property
    def enabled(self) -> bool:
        return self.setting == "auto" and self.threads > 1

    @property
    def threads_in_use(self) -> int:
        return 1 if self.active else self.threads

    def reset(self, now: float, why: str = "model swapped") -> None:
        """Back to full threads for a new model: its slowdown is not known yet."""
        self.active = False
        self.slowdown = None
        self._invoke_full = self._invoke_one = None
        self._hold_until = now
        self.leaves = 0
        if self.enabled:
            self.reason = f"{why}: measuring again"

    def hold(self, why: str) -> None:
        """Stay on (or go back to) full threads for now, e.g. a model under trial."""
        if self.active:
            self.switches += 1
        self.active = False
        if self.enabled:
            self.reason = why

    def disable(self, why: str) -> None:
        """Off for good (e.g. the one-thread interpreter cannot be built): full threads."""
        if self.active:
            self.switches += 1
        self.active = False
        self.setting = "off"
        self.reason = why

    def decide(self, w: Window, now: float) -> bool | None:
        """Feed one window; returns True (go to one thread), False (go back to full) or None
        (stay)."""
        if not self.enabled or w.elapsed_s <= 0 or w.frames < MIN_FRAMES:
            return None
        per_invoke = w.invoke_s / w.frames
        stale_share = w.stale / (w.frames + w.stale)
        if self.active:
            self._invoke_one = min(per_invoke, self._invoke_one or per_invoke)
            self._measure()
            occupancy = w.busy_s / w.elapsed_s
            if occupancy > LEAVE_AT or stale_share > MAX_STALE_SHARE:
                self.active = False
                self.switches += 1
                self.leaves += 1
                self._hold_until = now + min(HOLD_S * 2 ** (self.leaves - 1), HOLD_MAX_S)
                self.reason = (
                    f"left economy: busy {occupancy:.0%} of the time on 1 thread, "
                    f"{stale_share:.0%} of frames stale"
                )
                return False
            self.reason = f"1 thread: busy {occupancy:.0%} of the time"
            return None
        self._invoke_full = min(per_invoke, self._invoke_full or per_invoke)
        self._measure()
        k = self.slowdown if self.slowdown is not None else float(self.threads)
        projected = (w.busy_s + (k - 1.0) * w.invoke_s) / w.elapsed_s
        if now < self._hold_until:
            self.reason = f"{self.threads} threads: economy held off after leaving it"
            return None
        if projected <= ENTER_AT and w.stale == 0:
            self.active = True
            self.switches += 1
            self.reason = (
                f"1 thread: projected busy {projected:.0%} of the time "
                f"(one-thread invoke {k:.1f}x{'' if self.slowdown else ' assumed'})"
            )
            return True
        self.reason = f"{self.threads} threads: one thread would be busy {projected:.0%}"
        return None

    def _measure(self) -> None:
        if self._invoke_full and self._invoke_one:
            self.slowdown = max(1.0, self._invoke_one / self._invoke_full)

    def to_json(self) -> dict[str, object]:
        return {
            "setting": self.setting,
            "active": self.active,
            "threads_in_use": self.threads_in_use,
            "slowdown": None if self.slowdown is None else round(self.slowdown, 2),
            "switches": self.switches,
            "reason": self.reason,
        }
