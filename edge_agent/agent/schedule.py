"""Which scheduling the pipeline runs with, chosen from the thread budget (pure logic).

* ``overlap``: decode and preprocessing of the next frame run on their own threads *while* the
  interpreter invokes (reader -> prep -> infer -> post). It pays when the interpreter's threads
  leave CPU free: the extra work then runs beside the invoke instead of after it.
* ``serial``: one worker thread prepares, invokes and post-processes each frame in turn; the
  next frame is asked of the reader right after an invoke ends, so its decode overlaps only the
  post-processing, never the invoke. When the interpreter's threads take every core, anything
  running beside an invoke takes a core from one of them and the whole operator waits for that
  straggler: not fighting them is faster, and one thread costs fewer wake-ups and hand-overs.

``auto`` picks ``overlap`` when at least :data:`FREE_CORES_FOR_OVERLAP` of a core is left
beside the interpreter's ``threads`` (the usable CPUs: the affinity mask capped by the cgroup
CPU quota, see :func:`edge_agent.telemetry.cgroup.available_cores`), else ``serial``.

The video decoder (FFmpeg's, for files and streams) gets threads by the same budget
(:attr:`ScheduleChoice.decode_threads`): FFmpeg's frame threads keep decoding ahead after a
read returns, so they would run beside the invoke. ``overlap`` gives it the whole cores left
beside the interpreter (at least one); ``serial`` one thread, which decodes between invokes.
Measured (``benchmarks/pipeline.py``'s camera-rate case, the demo clip at 15 fps, threads = 2
on 2 cores, 4 alternating pairs): one decoder thread 6.79 ms of agent CPU per frame, FFmpeg's
default 7.25 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Schedule = Literal["overlap", "serial"]
ScheduleSetting = Literal["auto", "overlap", "serial"]
SCHEDULES: tuple[Schedule, ...] = ("overlap", "serial")
FREE_CORES_FOR_OVERLAP = 0.5


@dataclass(frozen=True)
class ScheduleChoice:
    """The schedule in force and why (shown in ``status`` and the metrics' ``pipeline``)."""

    schedule: Schedule
    setting: ScheduleSetting
    threads: int
    cpus: float
    reason: str

    @property
    def decode_threads(self) -> int:
        """Threads for the video decoder (module doc)."""
        if self.schedule == "serial":
            return 1
        return max(1, int(self.cpus - self.threads))

    def to_json(self) -> dict[str, object]:
        return {
            "schedule": self.schedule,
            "setting": self.setting,
            "threads": self.threads,
            "cpus": round(self.cpus, 2),
            "decode_threads": self.decode_threads,
            "reason": self.reason,
        }


def choose_schedule(threads: int, cpus: float, setting: str = "auto") -> ScheduleChoice:
    """The schedule for an interpreter with ``threads`` threads on ``cpus`` usable CPUs.

    ``setting`` ``overlap``/``serial`` forces it; ``auto`` decides (module doc). Raises
    ValueError for an unknown setting or a thread count below 1.
    """
    if threads < 1:
        raise ValueError(f"interpreter threads must be >= 1, got {threads}")
    cpus = max(float(cpus), 1.0)
    forced = "forced by pipeline.schedule"
    if setting == "overlap":
        return ScheduleChoice("overlap", "overlap", threads, cpus, forced)
    if setting == "serial":
        return ScheduleChoice("serial", "serial", threads, cpus, forced)
    if setting != "auto":
        raise ValueError(f"unknown pipeline schedule {setting!r}; use auto, overlap or serial")
    free = cpus - threads
    if free >= FREE_CORES_FOR_OVERLAP:
        return ScheduleChoice(
            "overlap", "auto", threads, cpus,
            f"{threads} interpreter thread(s) leave {free:.1f} of {cpus:.1f} CPUs free",
        )
    return ScheduleChoice(
        "serial", "auto", threads, cpus,
        f"{threads} interpreter thread(s) take all {cpus:.1f} CPUs",
    )
