"""Resource sampler on psutil + sysfs + cgroup v2: CPU, memory, load, disk, temperature, frequency.

Every reading that a board does not expose is ``None`` rather than an error: a Raspberry Pi
has thermal zones and cpufreq, a container often has neither.

The process's CPU time comes from the kernel's per-process clock (``time.process_time``, the
``clock_gettime`` system call), not from ``/proc/self/stat``: under qemu-user (an ARM build
checked on x86) that file reads 0 while the system call reports what the process really costs.
A clock that never moved (0 s since the process started, which a Python process that loaded
numpy never is) cannot be measured: the percentage is then ``None`` ("unknown"), never 0.

In a container or a unit with limits, cgroup v2 caps what the agent may use
(``cgroup.py``): ``cpu.percent_of_available`` is then of the CPU quota, and ``memory`` is of the
memory limit, so 100 % means the agent is at its limit, not the machine.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from . import cgroup

MB = 1024 * 1024


class ResourceSampler:
    """Samples this process and the machine. Call :meth:`sample` once per metrics interval.

    ``sysfs`` is the root of the sysfs tree (tests pass a fake tree); ``disk_path`` is the
    directory whose free space is reported (the state directory).
    """

    def __init__(
        self,
        disk_path: Path,
        *,
        sysfs: Path = Path("/sys"),
        proc: Path = Path("/proc"),
        cpu_clock: Callable[[], float] = time.process_time,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.disk_path = disk_path
        self.sysfs = sysfs
        self.proc = proc
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._proc = psutil.Process()
        self._last = (cpu_clock(), wall_clock())  # prime: percentages are since the last call

    def sample(self) -> dict[str, Any]:
        mem = psutil.virtual_memory()
        with self._proc.oneshot():
            rss = self._proc.memory_info().rss
            threads = self._proc.num_threads()
        try:
            load = os.getloadavg()
        except OSError:  # pragma: no cover - not on Linux
            load = (0.0, 0.0, 0.0)
        limits = cgroup.read(self.proc)
        cores = psutil.cpu_count() or 1
        available = cgroup.available_cores(self.proc, limits)
        cpu = self._process_percent()
        return {
            "cpu": {
                "process_percent": None if cpu is None else round(cpu, 1),
                "percent_of_available": None if cpu is None else round(cpu / available, 1),
                "cores": cores,
                "available_cores": round(available, 2),
                "limit_cores": None if limits.cpu_cores is None else round(limits.cpu_cores, 2),
                "load": [round(x, 2) for x in load],
                **self._cpufreq(),
            },
            "rss_mb": round(rss / MB, 1),
            "threads": threads,
            "memory": _memory(mem.total, mem.available, limits),
            "temperature": self._temperature(),
            "disk": self._disk(),
        }

    def _process_percent(self) -> float | None:
        """This process's CPU since the last sample, % of one core; None if not measurable."""
        cpu, wall = self._cpu_clock(), self._wall_clock()
        (cpu0, wall0), self._last = self._last, (cpu, wall)
        if cpu <= 0.0:  # the clock never moved: not reported here (not idle)
            return None
        if wall <= wall0:
            return 0.0
        return max(0.0, 100.0 * (cpu - cpu0) / (wall - wall0))

    def _disk(self) -> dict[str, Any]:
        path = self.disk_path
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            du = shutil.disk_usage(path)
        except OSError:
            return {"path": str(self.disk_path), "free_mb": None, "percent_used": None}
        return {
            "path": str(self.disk_path),
            "free_mb": round(du.free / MB, 1),
            "percent_used": round(100.0 * du.used / du.total, 1) if du.total else None,
        }

    def _temperature(self) -> dict[str, Any]:
        """Thermal zones (``/sys/class/thermal/thermal_zone*``), hottest as ``cpu_c``."""
        zones: dict[str, float] = {}
        for zone in sorted((self.sysfs / "class" / "thermal").glob("thermal_zone*")):
            raw = _read(zone / "temp")
            if raw is None:
                continue
            try:
                value = int(raw) / 1000.0
            except ValueError:
                continue
            kind = _read(zone / "type") or zone.name
            zones[f"{zone.name}:{kind}"] = round(value, 1)
        return {"cpu_c": max(zones.values()) if zones else None, "zones": zones}

    def _cpufreq(self) -> dict[str, Any]:
        """Current/max frequency of cpu0 and throttling where the board reports it.

        ``throttled`` comes from the Raspberry Pi firmware flag or the x86 thermal-throttle
        counter; a core running below its maximum frequency is not called throttled (that is
        ordinary frequency scaling), so elsewhere it stays ``None``.
        """
        base = self.sysfs / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
        cur = _read_int(base / "scaling_cur_freq")
        top = _read_int(base / "cpuinfo_max_freq")
        throttled: bool | None = None
        # Raspberry Pi firmware reports throttling itself (bit 2 = currently throttled)
        rpi = _read(self.sysfs / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled")
        if rpi is not None:
            try:
                throttled = bool(int(rpi, 16) & 0x4)
            except ValueError:
                throttled = None
        else:
            count = _read_int(
                self.sysfs / "devices" / "system" / "cpu" / "cpu0" / "thermal_throttle"
                / "core_throttle_count"
            )
            if count is not None:
                throttled = count > 0
        return {
            "freq_mhz": None if cur is None else round(cur / 1000.0),
            "max_freq_mhz": None if top is None else round(top / 1000.0),
            "throttled": throttled,
        }


def _memory(total: int, available: int, limits: cgroup.Limits) -> dict[str, Any]:
    """Memory the agent may use: the machine's, or the cgroup v2 limit when that is lower."""
    limit = limits.memory_bytes
    if limit is not None and limit < total:
        used = limits.memory_used_bytes
        free = max(0, limit - used) if used is not None else limit
        total, available = limit, min(available, free)
    return {
        "total_mb": round(total / MB, 1),
        "available_mb": round(available / MB, 1),
        "percent": round(100.0 * (total - available) / total, 1) if total else None,
        "limit_mb": None if limit is None else round(limit / MB, 1),
        "cgroup": limits.path,
    }


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    raw = _read(path)
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None
