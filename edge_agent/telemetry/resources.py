"""Resource sampler on psutil + sysfs: CPU, memory, load, disk, temperature, frequency.

Every reading that a board does not expose is ``None`` rather than an error: a Raspberry Pi
has thermal zones and cpufreq, a container often has neither.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import psutil

MB = 1024 * 1024


class ResourceSampler:
    """Samples this process and the machine. Call :meth:`sample` once per metrics interval.

    ``sysfs`` is the root of the sysfs tree (tests pass a fake tree); ``disk_path`` is the
    directory whose free space is reported (the state directory).
    """

    def __init__(self, disk_path: Path, *, sysfs: Path = Path("/sys")) -> None:
        self.disk_path = disk_path
        self.sysfs = sysfs
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first call always returns 0.0

    def sample(self) -> dict[str, Any]:
        mem = psutil.virtual_memory()
        with self._proc.oneshot():
            cpu = self._proc.cpu_percent(None)
            rss = self._proc.memory_info().rss
            threads = self._proc.num_threads()
        try:
            load = os.getloadavg()
        except OSError:  # pragma: no cover - not on Linux
            load = (0.0, 0.0, 0.0)
        return {
            "cpu": {
                "process_percent": round(cpu, 1),
                "cores": psutil.cpu_count() or 1,
                "load": [round(x, 2) for x in load],
                **self._cpufreq(),
            },
            "rss_mb": round(rss / MB, 1),
            "threads": threads,
            "memory": {
                "total_mb": round(mem.total / MB, 1),
                "available_mb": round(mem.available / MB, 1),
                "percent": mem.percent,
            },
            "temperature": self._temperature(),
            "disk": self._disk(),
        }

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
