"""A real small filesystem that tests fill up: a tmpfs mounted at run time (needs root).

``with SmallDisk(path, size="1m") as disk: disk.fill(); ...; disk.free()`` — writes hit a
real ENOSPC from the kernel, nothing is simulated. Tests skip when mounting is not allowed.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from types import TracebackType

import pytest

FILLER = ".filler"


class SmallDisk:
    def __init__(self, path: Path, size: str = "1m") -> None:
        self.path = Path(path)
        self.size = size

    def __enter__(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)

    def fill(self, leave: int = 0) -> int:
        """Write a filler file until ENOSPC (then give back ``leave`` bytes); bytes written."""
        n = 0
        chunk = b"\0" * 4096
        with open(self.path / FILLER, "ab", buffering=0) as f:
            try:
                while True:
                    n += f.write(chunk) or 0
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        if leave:
            os.truncate(self.path / FILLER, max(0, os.path.getsize(self.path / FILLER) - leave))
        return n

    def free(self) -> None:
        (self.path / FILLER).unlink(missing_ok=True)

    def available(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize
