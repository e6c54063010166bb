"""Durable file replacement: temp file -> fsync -> rename -> fsync(directory).

The one implementation every part uses (status.json, snapshots, diag bundles, the model store,
registry publishing, keys). The temp file is created with ``O_EXCL`` beside the target, so a
symlink planted at the temp name is never followed, and it is removed if the write fails.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    _fsync(path, os.O_DIRECTORY)


def fsync_file(path: Path) -> None:
    """fsync a file without following a symlink."""
    _fsync(path, os.O_NOFOLLOW)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: Path, obj: Any, mode: int = 0o644) -> None:
    """``obj`` as indented, key-sorted JSON, written with :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(), mode)
