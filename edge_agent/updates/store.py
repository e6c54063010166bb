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
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common.atomicfile import fsync_dir, fsync_file, write_json_atomic
from .errors import CorruptModel, OutsideStore, SymlinkInStore, VersionNotFound
from .fetch import sha256_file
from .state import Entry, Recovery, StateInvalid, StoreState, raise_seq, rebuild

if TYPE_CHECKING:
    from ..config import Config
    from .keys import TrustStore

log = logging.getLogger(__name__)

STATE_NAME = "state.json"
PREV_NAME = "state.json.prev"


class Store:
    def __init__(
        self, state_dir: Path, trust: TrustStore | None = None, *, trusted_keys: Sequence[Path] = ()
    ) -> None:
        """``trust`` (or the ``trusted_keys`` files, read when first needed) lets a damaged
        state be rebuilt from the signed manifests in ``versions/``; without keys nothing there
        is taken as proven."""
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "models"
        self.versions = self.root / "versions"
        self.staging_root = self.root / "staging"
        self.state_path = self.root / STATE_NAME
        self.prev_path = self.root / PREV_NAME
        self._trust = trust
        self._trusted_keys = list(trusted_keys)
        self._lock = threading.RLock()
        self._memo: tuple[Any, StoreState, str] | None = None
        self._memo_saved = False

    @classmethod
    def for_config(cls, cfg: Config) -> Store:
        """The store of ``cfg``, with its ``[updates] trusted_keys``."""
        return cls(cfg.device.state_dir, trusted_keys=list(cfg.updates.trusted_keys))

    @property
    def trust(self) -> TrustStore | None:
        if self._trust is None and self._trusted_keys:
            from ..errors import EdgeAgentError
            from .keys import TrustStore

            try:
                self._trust = TrustStore.from_files(self._trusted_keys)
            except EdgeAgentError as exc:
                log.warning("model store: trusted keys unusable (%s)", exc)
            self._trusted_keys = []
        return self._trust

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
    def inspect(self) -> tuple[StoreState, str | None]:
        """Read-only: the state and, when ``state.json`` is damaged, what is wrong with it
        (the state is then the one :meth:`load` would recover, computed in memory)."""
        with self._lock:
            s, problem = self._read(self.state_path)
            if problem is None and s is None:  # no state.json: a new device, or a lost file
                if not self.prev_path.exists() and not self.installed():
                    return StoreState(), None
                problem = f"{self.state_path}: missing while the store holds versions"
            if problem is None:
                assert s is not None
                return s, None
            sig = self._signature()
            if self._memo is not None and self._memo[0] == sig:
                return self._memo[1], self._memo[2]
            recovered = self._recover(problem)
            self._memo, self._memo_saved = (sig, recovered, problem), False
            return recovered, problem

    def load(self) -> StoreState:
        """The state; a damaged ``state.json`` is recovered (see :meth:`_recover`), the damage
        reported once and, when it can be proven, the repair written back."""
        with self._lock:
            s, problem = self.inspect()
            if problem is None or self._memo_saved:
                return s
            self._memo_saved = True
            log.error("%s; recovered from %s", problem, s.recovered.source if s.recovered else "?")
            if not self._can_persist():
                log.error(
                    "model store: no trusted keys to verify versions/ with; the recovered state "
                    "is used but not written back ([updates] trusted_keys)"
                )
                return s
            aside = ""
            try:
                if os.path.lexists(self.state_path):
                    dest = self.root / f"{STATE_NAME}.damaged-{int(time.time())}"
                    os.rename(self.state_path, dest)
                    aside = str(dest)
                assert s.recovered is not None
                s = replace(s, recovered=replace(s.recovered, aside=aside))
                self._write(s, keep_previous=False)
            except OSError as exc:
                log.error("model store: could not write the recovered state: %s", exc)
            return s

    def save(self, s: StoreState) -> None:
        with self._lock:
            self._write(s, keep_previous=True)

    def _write(self, s: StoreState, *, keep_previous: bool) -> None:
        """Write ``state.json``; the generation it replaces (when it reads back whole) is kept
        as ``state.json.prev`` first, so one damaged write never loses the state."""
        self.ensure_dir(self.root)
        if keep_previous:
            current, problem = self._read(self.state_path)
            if current is not None and problem is None:
                write_json_atomic(self.prev_path, current.to_json())
        write_json_atomic(self.state_path, s.to_json())
        self._memo, self._memo_saved = None, False

    def _read(self, path: Path) -> tuple[StoreState | None, str | None]:
        """(state, None), (None, None) when the file does not exist, or (None, problem)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"{path}: unreadable ({exc.strerror})"
        if stat.S_ISLNK(st.st_mode):
            raise SymlinkInStore(f"{path}: is a symlink; remove it")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return None, f"{path}: unreadable ({exc.strerror})"
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            what = "empty" if not raw.strip() else f"not JSON ({len(raw)} bytes)"
            return None, f"{path}: {what}"
        try:
            return StoreState.from_json(data), None
        except StateInvalid as exc:
            return None, f"{path}: wrong shape ({exc})"

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.lstat(self.state_path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _can_persist(self) -> bool:
        """A rebuild is written back only when versions/ could be checked (or is empty)."""
        trust = self.trust
        return (trust is not None and bool(trust.keys)) or not self.installed()

    def _recover(self, problem: str) -> StoreState:
        """Recovery order: ``state.json.prev`` (the generation before the last write), else
        what ``versions/`` proves (signed manifests, model sha256); either way ``highest_seq``
        is raised to every verified installed version's seq. Never silently empty."""
        prev, prev_problem = self._read(self.prev_path)
        verified = self.verified_versions()
        if prev is not None:
            base, source = prev, PREV_NAME
        else:
            why = prev_problem or f"{self.prev_path}: missing"
            problem = f"{problem}; {why}"
            base, source = rebuild(verified), "versions/"
        s = raise_seq(base, verified)
        note = Recovery(at=time.time(), source=source, problem=problem)
        return replace(s, recovered=note)

    def verified_versions(self) -> list[tuple[Entry, float]]:
        """Installed versions whose manifest signature verifies with the trusted keys and whose
        model still has its sha256, with the manifest's ``created`` time (unix); [] without keys."""
        from .errors import UpdateError
        from .manifest import SIGNATURE_NAME, parse_manifest, verify_signature

        trust = self.trust
        if trust is None or not trust.keys:
            return []
        out: list[tuple[Entry, float]] = []
        for e in self.installed():
            vdir = self.dir_of(e)
            try:
                raw = (vdir / "manifest.json").read_bytes()
                sig = (vdir / SIGNATURE_NAME).read_bytes()
                verify_signature(raw, sig, trust, e.id)
                m = parse_manifest(raw, e.id)
                self.verify(e)
            except (OSError, UpdateError) as exc:
                log.warning("model store: %s not used to rebuild the state: %s", e.id, exc)
                continue
            if (m.name, m.version, m.seq) == (e.name, e.version, e.seq):
                out.append((e, m.created.timestamp()))
        return out

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
            have = sorted({f"{e.name} {e.version}" for e in self.installed()
                           if name in (None, e.name)})
            which = f" of {name}" if name else ""
            listed = f"installed: {', '.join(have)}" if have else "nothing is installed yet"
            raise VersionNotFound(
                f"version {version}{which} is not installed ({listed}; see `edge-agent models "
                "list`)"
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


def read_evaluation(vdir: Path, model_file: str | None = None, sha256: str | None = None
                    ) -> dict[str, Any] | None:
    """The ``evaluation`` of the manifest in ``vdir`` (what ``models compare`` found before the
    release), or None. With ``model_file``/``sha256``: only if the manifest is about that file."""
    try:
        m = json.loads((vdir / "manifest.json").read_bytes())
        if model_file is not None and m["model"]["file"] != model_file:
            return None
        if sha256 is not None:
            mf = next(f for f in m["files"] if f["name"] == m["model"]["file"])
            if mf["sha256"] != sha256:
                return None
        ev = m.get("evaluation")
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return None
    return ev if isinstance(ev, dict) and isinstance(ev.get("summary"), str) else None
