"""Captures on disk (``<state_dir>/captures/<stamp>-<n>/frame-*.jpg``), bounded.

A board's trigger input can fire many times a second; every capture it asks for goes through
:class:`CaptureStore`: a token bucket (``[captures] per_minute``, ``burst``) refuses the
excess (counted), and after each capture the oldest capture folders are deleted until at most
``max_count`` folders and ``max_bytes`` remain. Only folders directly inside the captures
folder are ever deleted.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..common import names
from ..mqtt.events import TokenBucket


@dataclass(frozen=True)
class CaptureLimits:
    max_count: int = 100
    max_bytes: int = 50 * 1024 * 1024
    per_minute: float = 12.0
    burst: int = 5


def _tree_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            continue
    return total


class CaptureStore:
    def __init__(
        self,
        root: Path,
        limits: CaptureLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root)
        self.limits = limits or CaptureLimits()
        self.clock = clock
        self._bucket = TokenBucket(self.limits.per_minute / 60.0, float(self.limits.burst))
        self._seq = 0

    def admit(self) -> bool:
        """May a capture be made now (rate limit)?"""
        return self._bucket.allow(self.clock())

    def new_folder(self, count: int) -> Path:
        """A fresh folder for one capture (``<stamp>-<n>-<trigger count>``: sortable)."""
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%S")
        return self.root / names.check(f"{stamp}-{self._seq:06d}-{int(count)}", "capture")

    def folders(self) -> list[Path]:
        """Capture folders, oldest first (by modification time, then name)."""
        try:
            entries = [p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            return []

        def key(p: Path) -> tuple[float, str]:
            try:
                return (p.stat().st_mtime, p.name)
            except OSError:
                return (0.0, p.name)

        return sorted(entries, key=key)

    def usage(self) -> tuple[int, int]:
        """(capture folders, bytes) now on disk."""
        folders = self.folders()
        return len(folders), sum(_tree_bytes(p) for p in folders)

    def discard(self, folder: Path) -> None:
        """Remove a capture that could not be written completely (only inside the folder)."""
        if folder.resolve().parent == self.root.resolve() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)

    def prune(self, room: int = 0) -> int:
        """Delete the oldest captures until at most ``max_count - room`` folders and
        ``max_bytes`` remain; returns how many were deleted."""
        folders = self.folders()
        sizes = [_tree_bytes(p) for p in folders]
        total = sum(sizes)
        keep = max(0, self.limits.max_count - room)
        removed = 0
        root = self.root.resolve()
        while folders and (len(folders) > keep or total > self.limits.max_bytes):
            victim, size = folders.pop(0), sizes.pop(0)
            total -= size
            if victim.resolve().parent != root:
                continue  # never act outside the captures folder
            shutil.rmtree(victim, ignore_errors=True)
            removed += 1
        return removed
