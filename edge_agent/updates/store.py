"""The model store on the device: ``<state_dir>/models``.

```
models/
  state.json                          active, previous, trial, bad, highest seq, deployment
  versions/<name>/<version>-<sha12>/  <model>.tflite, <model>.json, manifest.json(.sig), golden
  staging/<deployment>/               downloads in progress (*.part), resumed after a restart
```

Every write is temp -> fsync -> rename -> fsync(dir). Nothing is written through a symlink:
each directory on the way is checked with ``lstat`` and files are opened with ``O_NOFOLLOW``,
so a symlink planted in the store is refused (:class:`SymlinkInStore`), never followed.
Every delete and rename (staging cleanup, gc, discarding a rejected version, install) goes
through :meth:`Store.inside` first: its target, resolved, must lie strictly inside the folder it
belongs to (``staging/`` or ``versions/``), else :class:`OutsideStore` and nothing is touched -
whatever a deployment id or a state file says.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import threading
from pathlib import Path

from ..atomicfile import fsync_dir, fsync_file, write_json_atomic
from .errors import CorruptModel, OutsideStore, SymlinkInStore, VersionNotFound
from .fetch import sha256_file
from .state import Entry, StoreState

log = logging.getLogger(__name__)



class Store:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "models"
        self.versions = self.root / "versions"
        self.staging_root = self.root / "staging"
        self.state_path = self.root / "state.json"
        self._lock = threading.RLock()

    # -- safety -------------------------------------------------------------------------------
    def ensure_dir(self, path: Path) -> Path:
        """Create ``path`` (inside the store) refusing any symlink on the way."""
        path = Path(path)
        rel = path.relative_to(self.state_dir)
        cur = self.state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for part in rel.parts:
            cur = cur / part
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                os.mkdir(cur, 0o755)
                fsync_dir(cur.parent)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise SymlinkInStore(
                    f"{cur}: is a symlink inside the model store; refusing to write through it. "
                    "Remove it (the store holds only plain files and directories)"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise SymlinkInStore(f"{cur}: expected a directory in the model store")
        return path

    @staticmethod
    def inside(target: Path, folder: Path) -> Path:
        """``target`` when it lies strictly inside ``folder`` (its parent resolved, its own name
        not followed: a symlink there is removed, not what it points to); else OutsideStore."""
        target = Path(target)
        base = Path(folder).resolve()
        name = target.name
        resolved = target.parent.resolve() / name if name not in ("", ".", "..") else None
        if resolved is None or base not in resolved.parents:
            raise OutsideStore(
                f"{target}: not strictly inside {folder}; refusing to delete or move it "
                "(a deployment id or state entry that names a path outside the store)"
            )
        return target

    def remove_tree(self, target: Path, folder: Path, *, ignore_errors: bool = False) -> None:
        """Delete ``target`` (a directory, or a symlink planted there) inside ``folder``."""
        target = self.inside(target, folder)
        if target.is_symlink() or target.is_file():
            target.unlink(missing_ok=True)
        elif target.is_dir():
            shutil.rmtree(target, ignore_errors=ignore_errors)

    def check_tree(self, path: Path) -> None:
        """Refuse a directory that contains a symlink anywhere inside."""
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                if p.is_symlink():
                    raise SymlinkInStore(
                        f"{p}: is a symlink inside the model store; remove it and retry"
                    )

    # -- state.json -----------------------------------------------------------------------
    def load(self) -> StoreState:
        with self._lock:
            try:
                st = os.lstat(self.state_path)
            except FileNotFoundError:
                return StoreState()
            if stat.S_ISLNK(st.st_mode):
                raise SymlinkInStore(f"{self.state_path}: is a symlink; remove it")
            try:
                return StoreState.from_json(json.loads(self.state_path.read_bytes()))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("%s: unreadable (%s); using the factory model", self.state_path, exc)
                return StoreState()

    def save(self, s: StoreState) -> None:
        with self._lock:
            self.ensure_dir(self.root)
            write_json_atomic(self.state_path, s.to_json())

    # -- versions ---------------------------------------------------------------------------
    def dir_of(self, entry: Entry) -> Path:
        return self.versions / entry.id

    def model_path(self, entry: Entry) -> Path:
        return self.dir_of(entry) / entry.file

    def verify(self, entry: Entry) -> None:
        """Raise :class:`CorruptModel` unless the entry's model file still has its sha256."""
        path = self.model_path(entry)
        try:
            if path.is_symlink():
                raise CorruptModel(f"{path}: is a symlink, not the installed model")
            digest = sha256_file(path)
        except FileNotFoundError:
            raise CorruptModel(f"{path}: installed model is missing") from None
        except OSError as exc:
            raise CorruptModel(f"{path}: cannot read installed model: {exc.strerror}") from None
        if digest != entry.sha256:
            raise CorruptModel(
                f"{path}: sha256 {digest[:12]} no longer matches {entry.sha256[:12]} recorded at "
                "install (disk corruption or tampering)"
            )

    def staging(self, deployment: str) -> Path:
        d = self.inside(self.staging_root / _safe(deployment), self.staging_root)
        return self.ensure_dir(d)

    def drop_staging(self, deployment: str) -> None:
        """Forget a finished deployment's partial downloads."""
        self.remove_tree(
            self.staging_root / _safe(deployment), self.staging_root, ignore_errors=True
        )

    def install(self, staging: Path, entry: Entry) -> Path:
        """Move a fully verified staging directory into ``versions/`` (atomic rename)."""
        with self._lock:
            self.inside(staging, self.staging_root)
            self.check_tree(staging)
            name_dir = self.ensure_dir(self.versions / entry.name)  # refuses a symlink first
            target = self.inside(self.dir_of(entry), self.versions)
            self.inside(name_dir, self.versions)
            if target.is_symlink():
                raise SymlinkInStore(f"{target}: is a symlink inside the model store; remove it")
            if target.exists():
                try:
                    self.check_tree(target)
                    self.verify(entry)
                    self.remove_tree(staging, self.staging_root)
                    return target
                except CorruptModel:
                    self.remove_tree(target, self.versions)
            for f in staging.iterdir():
                fsync_file(f)
            fsync_dir(staging)
            os.rename(staging, target)
            fsync_dir(name_dir)
            fsync_dir(staging.parent)
            return target

    def installed(self) -> list[Entry]:
        """Every version directory with a manifest, oldest first (by seq)."""
        out: list[Entry] = []
        if not self.versions.is_dir():
            return out
        for name_dir in sorted(self.versions.iterdir()):
            if name_dir.is_symlink() or not name_dir.is_dir():
                continue
            for vdir in sorted(name_dir.iterdir()):
                e = read_entry(vdir, f"{name_dir.name}/{vdir.name}")
                if e is not None:
                    out.append(e)
        return sorted(out, key=lambda e: (e.name, e.seq))

    def find(self, name: str | None, version: str) -> Entry:
        matches = [
            e for e in self.installed() if e.version == version and name in (None, e.name)
        ]
        if not matches:
            raise VersionNotFound(
                f"version {version} of {name or 'any model'} is not installed "
                "(see `edge-agent models list`)"
            )
        return matches[-1]

    def gc(self, keep: int, s: StoreState) -> list[str]:
        """Keep the newest ``keep`` versions per name plus active, previous and trial."""
        removed: list[str] = []
        with self._lock:
            protected = s.referenced()
            by_name: dict[str, list[Entry]] = {}
            for e in self.installed():
                by_name.setdefault(e.name, []).append(e)
            for entries in by_name.values():  # oldest first
                newest = {e.id for e in entries[-keep:]}
                for e in entries:
                    if e.id in newest or e.id in protected:
                        continue
                    self.remove_tree(self.dir_of(e), self.versions)
                    removed.append(e.id)
            if removed:
                fsync_dir(self.versions)
            if self.staging_root.is_dir():
                for d in self.staging_root.iterdir():
                    if s.deployment is None or s.deployment.final or d.name != _safe(
                        s.deployment.id
                    ):
                        self.remove_tree(d, self.staging_root, ignore_errors=True)
        return removed

    def discard(self, entry: Entry) -> None:
        """Delete an installed version (one preflight rejected)."""
        with self._lock:
            self.remove_tree(self.dir_of(entry), self.versions)


def _safe(deployment: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", deployment)[:64] or "deployment"


def read_entry(vdir: Path, eid: str) -> Entry | None:
    """The :class:`Entry` of an installed version directory (from its manifest.json)."""
    mpath = vdir / "manifest.json"
    try:
        if vdir.is_symlink() or mpath.is_symlink():
            return None
        m = json.loads(mpath.read_bytes())
        mf = next(f for f in m["files"] if f["name"] == m["model"]["file"])
        return Entry(
            id=eid,
            name=m["name"],
            version=m["version"],
            seq=int(m["seq"]),
            sha256=mf["sha256"],
            size=int(mf["size"]),
            file=m["model"]["file"],
        )
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return None
