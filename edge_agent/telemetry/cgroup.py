"""cgroup v2 limits of this process: how much CPU and memory the agent may use.

In a container (or a systemd unit with ``CPUQuota=`` / ``MemoryMax=``) the kernel caps the
agent below the machine's size; percentages of the whole machine would then read low while the
agent is in fact at its limit. The unified hierarchy (cgroup v2) says so in plain files:

- ``/proc/self/cgroup``: ``0::/PATH``, the process's cgroup, relative to the cgroup2 mount;
- ``/proc/self/mountinfo``: where cgroup2 is mounted (``/sys/fs/cgroup``, or
  ``/sys/fs/cgroup/unified`` on a hybrid v1/v2 system);
- ``cpu.max``: ``QUOTA PERIOD`` in microseconds, or ``max PERIOD`` (no limit);
- ``memory.max``: bytes, or ``max``; ``memory.current``: bytes the cgroup uses now.

A limit set on any ancestor applies too, so the tightest one from the process's cgroup up to the
mount is taken. cgroup v1 (``cpu.cfs_quota_us``, ``memory.limit_in_bytes``) is not read: every
value is then ``None``, as on a machine without limits. Parsing is pure (``parse_*``); ``read``
only opens files, under ``proc`` and the mount found there (tests pass fake trees).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    """The cgroup v2 limits in force; ``None`` where there is none (or no cgroup v2)."""

    cpu_cores: float | None = None  # cpu.max quota / period
    memory_bytes: int | None = None  # memory.max
    memory_used_bytes: int | None = None  # memory.current of the process's own cgroup
    path: str | None = None  # the process's cgroup (relative to the cgroup2 mount)


def parse_cpu_max(text: str) -> float | None:
    """``"150000 100000"`` -> 1.5 cores; ``"max 100000"`` (or nonsense) -> None."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_bytes(text: str) -> int | None:
    """``memory.max`` / ``memory.current``: bytes, or ``max`` (no limit) -> None."""
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def parse_self_cgroup(text: str) -> str | None:
    """The v2 entry of ``/proc/self/cgroup`` (``0::/system.slice/x.service``) -> its path."""
    for line in text.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hier == "0" and controllers == "" and path.startswith("/"):
            return path
    return None


def parse_cgroup2_mount(mountinfo: str) -> tuple[str, str] | None:
    """``(mount point, root inside the hierarchy)`` of the cgroup2 mount in ``mountinfo``."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep or not right.startswith("cgroup2 "):
            continue
        fields = left.split()
        if len(fields) >= 5:
            return _unescape(fields[4]), _unescape(fields[3])
    return None


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def read(proc: Path = Path("/proc")) -> Limits:
    """This process's cgroup v2 limits (``Limits()`` when there is no cgroup v2)."""
    path = parse_self_cgroup(_read(proc / "self" / "cgroup") or "")
    mount = parse_cgroup2_mount(_read(proc / "self" / "mountinfo") or "")
    if path is None or mount is None:
        return Limits()
    point, root = mount
    # with a cgroup namespace (a container) the path is already relative to the mount's root
    rel = path[len(root):] if root != "/" and path.startswith(root) else path
    here = Path(point) / rel.lstrip("/")
    top = Path(point)
    cpu: float | None = None
    mem: int | None = None
    d = here
    while True:
        c = parse_cpu_max(_read(d / "cpu.max") or "")
        if c is not None:
            cpu = c if cpu is None else min(cpu, c)
        m = parse_bytes(_read(d / "memory.max") or "")
        if m is not None:
            mem = m if mem is None else min(mem, m)
        if d == top or d == d.parent:
            break
        d = d.parent
    used = parse_bytes(_read(here / "memory.current") or "")
    return Limits(cpu_cores=cpu, memory_bytes=mem, memory_used_bytes=used, path=path)


def usable_cores(affinity: int, machine: int, quota: float | None) -> float:
    """CPUs a process may run on: its affinity mask (``machine`` when unknown), capped by the
    cgroup CPU quota (``None``: no quota)."""
    usable = float(affinity or machine or 1)
    return min(usable, quota) if quota is not None else usable


def available_cores(proc: Path = Path("/proc"), limits: Limits | None = None) -> float:
    """This process's usable CPUs (:func:`usable_cores` of its affinity and cgroup quota)."""
    if limits is None:
        limits = read(proc)
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        affinity = 0
    return usable_cores(affinity, os.cpu_count() or 1, limits.cpu_cores)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
