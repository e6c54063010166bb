"""One deployment from ``received`` to a preflighted version in the store.

The :class:`Updater` strings the pure checks (manifest, rollout table) and the adapters (fetch,
store, preflight, and the shadow evaluation it is handed) together. Every state change is
persisted in ``state.json`` *before* it is published, so an outcome survives a power cut and
is sent again after the restart. What comes after preflight (swap, trial, commit) needs the
running pipeline and lives in :mod:`.activation`.

``EDGE_AGENT_TEST_KILL_AT=<state>`` makes the process SIGKILL itself right after that state is
persisted (fault-injection tests loop over every state).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..common.atomicfile import atomic_write_bytes as write_atomic
from ..common.atomicfile import fsync_dir
from ..config import UpdatesConfig
from . import rollout as R
from .cancel import Cancel, describe
from .errors import (
    DiskFull,
    DownloadCancelled,
    DownloadError,
    FileTooLarge,
    ManifestRejected,
    ModelRejected,
    NotTFLite,
    ReleaseTooLarge,
    ShadowFailed,
    StoreError,
    UpdateError,
    WrongHash,
    WrongSize,
)
from .fetch import Fetcher, join_url
from .keys import TrustStore
from .manifest import (
    MANIFEST_NAME,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_NAME,
    Manifest,
    Shadow,
    utcnow,
    verify_manifest,
)
from .preflight import TFLITE_MAGIC, PreflightReport, run_preflight
from .shadow import ShadowOutcome
from .state import (
    Deployment,
    Entry,
    StoreState,
    begin_trial,
    consume_attempt,
    set_deployment,
)
from .store import Store

log = logging.getLogger("edge_agent.updates")

KILL_ENV = "EDGE_AGENT_TEST_KILL_AT"
Publish = Callable[[dict[str, Any]], None]
REJECTED_DOWNLOADS = (WrongHash, WrongSize, FileTooLarge, ReleaseTooLarge)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
ShadowEvaluator = Callable[[Entry, Shadow, Cancel], ShadowOutcome]
"""Runs the candidate beside the active model (:meth:`.activation.Activation.shadow`)."""


def checkpoint(state: str) -> None:
    """Fault injection for tests: die here, as a power cut would."""
    if os.environ.get(KILL_ENV) == state:
        log.warning("%s=%s: killing this process now", KILL_ENV, state)
        os.kill(os.getpid(), signal.SIGKILL)


def new_deployment(model: str, version: str, registry: str, did: str | None = None) -> Deployment:
    return Deployment(did or uuid.uuid4().hex[:12], model, version, registry)


@dataclass(frozen=True)
class Fetched:
    """A verified manifest with the exact bytes it was verified from (kept in the store)."""

    manifest: Manifest
    raw: bytes
    signature: bytes | None


@dataclass
class Prepared:
    manifest: Manifest
    entry: Entry
    preflight: PreflightReport | None


class Updater:
    def __init__(
        self,
        cfg: UpdatesConfig,
        store: Store,
        trust: TrustStore,
        *,
        publish: Publish,
        fetcher: Fetcher | None = None,
        now: Callable[[], datetime] = utcnow,
        threads: int = 1,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.trust = trust
        self.publish = publish
        self.fetcher = fetcher or Fetcher(ca=cfg.ca)
        self.now = now
        self.threads = threads

    # -- persistence + publication of each step ----------------------------------------------
    def advance(
        self,
        r: R.Rollout,
        event: str,
        *,
        change: Callable[[StoreState], StoreState] | None = None,
        **kw: Any,
    ) -> Deployment:
        """Apply ``event``; persist the new state (with ``change`` to the store state, in the
        same atomic write), then publish it. On a full disk the staging is freed first (room
        for state.json); if even that cannot be written the record is published anyway."""
        d = r.handle(event, **kw)
        if event == "progress":
            checkpoint(f"{d.state}:progress")  # in the middle of a download
        else:
            if d.reason == "disk_full":
                self.store.drop_staging(d.id)
            try:
                self.persist(d, change)
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                log.error("update %s: cannot save state.json (%s); publishing the %s record "
                          "anyway", d.id, exc.strerror, d.state)
                self.send(d, r.progress, mark_sent=False)
                return d
            checkpoint(d.state)
            if d.final:
                try:
                    self.store.drop_staging(d.id)
                except StoreError as exc:  # an unsafe id: nothing deleted, the outcome stands
                    log.error("update %s: staging not cleaned up: %s", d.id, exc)
        self.send(d, r.progress)
        return d

    def persist(
        self, d: Deployment, change: Callable[[StoreState], StoreState] | None = None
    ) -> None:
        s = self.store.load()
        if change is not None:
            s = change(s)
        self.store.save(set_deployment(s, d))

    def send(self, d: Deployment, progress: float | None = None, *, mark_sent: bool = True) -> None:
        try:
            self.publish(R.record(d, progress))
        except Exception as exc:  # the outcome stays persisted; it is re-sent at start
            log.warning("could not publish update record: %s", exc)
            return
        if d.final and mark_sent:
            s = self.store.load()
            if s.deployment is not None and s.deployment.id == d.id:
                try:
                    self.store.save(set_deployment(s, replace(s.deployment, sent=True)))
                except OSError as exc:  # sent again at the next start: a repeat, not a loss
                    log.warning("update %s: cannot mark the outcome sent: %s", d.id, exc)

    def start(self, d: Deployment) -> R.Rollout:
        r = R.Rollout(d)
        self.persist(d)
        checkpoint(R.RECEIVED)
        self.send(d)
        return r

    # -- the steps ---------------------------------------------------------------------------
    def prepare(
        self,
        r: R.Rollout,
        *,
        input_shape: list[int] | None,
        runtime: str | None,
        cancel: Cancel | None = None,
        shadow: ShadowEvaluator | None = None,
    ) -> Prepared | None:
        """received -> ... -> preflight passed (-> shadow agreed, when the manifest asks for a
        shadow evaluation and ``shadow`` can run one). None if the rollout ended (rejected,
        failed, cancelled) or was interrupted by the shutdown (it stays persisted and resumes
        at the next start)."""
        cancel = cancel or Cancel()
        d = r.deployment
        base = join_url(d.registry, d.model, d.version)
        try:
            fetched = self._manifest(base, d, input_shape, runtime, cancel)
            manifest = fetched.manifest
            if manifest.evaluation is not None:  # every record from here on carries it
                r.deployment = replace(r.deployment, evaluation=manifest.evaluation.summary)
            self.advance(r, "accepted")
            entry, staging = self._download(r, base, fetched, cancel)
            self.advance(r, "downloaded")
            _check(cancel)
            self._verify(staging, fetched.manifest, entry)
            self.advance(r, "verified")
            _check(cancel)
        except DownloadCancelled as exc:
            self._cancelled(r, exc)
            return None
        except (*REJECTED_DOWNLOADS, ManifestRejected, ModelRejected) as exc:
            self.advance(r, "reject", reason=exc.reason, detail=str(exc))
            return None
        except (DiskFull, DownloadError) as exc:
            self.advance(r, "error", reason=exc.reason, detail=str(exc))
            return None
        except StoreError as exc:
            self.advance(r, "reject", reason=exc.reason, detail=str(exc))
            return None
        except OSError as exc:
            reason = "disk_full" if exc.errno in DISK_FULL else (
                "download_failed" if r.state in (R.RECEIVED, R.DOWNLOADING) else "store_error"
            )
            self.advance(r, "error", reason=reason, detail=f"{exc.filename or ''}: {exc}")
            return None
        except UpdateError as exc:
            self.advance(r, "error", reason=exc.reason, detail=str(exc))
            return None
        try:
            report = run_preflight(
                self.store.dir_of(entry),
                timeout_s=self.cfg.preflight_timeout_s,
                threads=self.threads,
                input_shape=input_shape,
            )
        except ModelRejected as exc:
            self._discard(entry)
            self.advance(r, "reject", reason=exc.reason, detail=str(exc))
            return None
        if cancel.is_set():  # the preflight subprocess is not interrupted: cancel after it
            self._discard(entry)
            self._cancelled(r, _cancelled_error(cancel))
            return None
        detail = f"preflight p50 {report.p50_ms:.2f} ms"
        policy = fetched.manifest.health.shadow
        if policy is not None and shadow is not None:
            self.advance(r, "shadowing", detail=detail)
            detail = self._shadow(r, entry, policy, shadow, cancel)
            if not detail:
                return None
        attempts, did = self.cfg.trial_attempts, r.deployment.id
        self.advance(
            r,
            "passed",
            detail=detail,
            # the trial and its first attempt are persisted before the model is loaded
            change=lambda s: consume_attempt(begin_trial(s, entry, attempts, did)),
        )
        return Prepared(fetched.manifest, entry, report)

    def _shadow(
        self, r: R.Rollout, entry: Entry, policy: Shadow, evaluate: ShadowEvaluator,
        cancel: Cancel,
    ) -> str:
        """Run the shadow evaluation; the ``passed`` detail, or "" when the rollout ended
        (rejected, cancelled, interrupted by the shutdown)."""
        try:
            out = evaluate(entry, policy, cancel)
        except Exception as exc:  # the candidate could not even be loaded beside the active one
            log.exception("update %s: shadow evaluation failed", r.deployment.id)
            self._discard(entry)
            err = ShadowFailed(f"shadow: could not run the candidate: {exc}")
            self.advance(r, "reject", reason=err.reason, detail=str(err))
            return ""
        fig = out.figures
        r.deployment = replace(r.deployment, shadow=fig.to_json())
        if not out.decided:
            self._discard(entry)
            self._cancelled(r, _cancelled_error(cancel))
            return ""
        if out.rejection is not None:
            self._discard(entry)
            self.advance(r, "reject", reason=out.rejection.reason, detail=str(out.rejection))
            return ""
        return f"shadow agreement {fig.agreement:.3f} over {fig.frames} frames"

    def _cancelled(self, r: R.Rollout, exc: DownloadCancelled) -> None:
        if exc.why == "shutdown":  # not an outcome: the update resumes after the restart
            log.info("update %s interrupted by the shutdown in %s", r.deployment.id, r.state)
            return
        self.advance(r, "cancel", reason="cancelled", detail=str(exc))

    def _manifest(
        self,
        base: str,
        d: Deployment,
        input_shape: list[int] | None,
        runtime: str | None,
        cancel: Cancel,
    ) -> Fetched:
        limit = self.cfg.download_timeout_s
        raw = self.fetcher.get_bytes(
            f"{base}/{MANIFEST_NAME}", self.cfg.max_manifest_bytes, deadline_s=limit, cancel=cancel
        )
        sig = None
        if len(raw) <= self.cfg.max_manifest_bytes:
            sig = self.fetcher.get_optional(
                f"{base}/{SIGNATURE_NAME}", MAX_SIGNATURE_BYTES, deadline_s=limit, cancel=cancel
            )
        manifest = verify_manifest(
            raw,
            sig,
            self.trust,
            expected_name=d.model,
            highest_seq=self.store.load().highest_seq.get(d.model),
            now=self.now(),
            max_bytes=self.cfg.max_manifest_bytes,
            runtime=runtime,
            input_shape=input_shape,
            agent_version=__version__,
            where=f"{d.model} {d.version}",
        )
        return Fetched(manifest, raw, sig)

    def file_deadline_s(self, size: int) -> float:
        """A file's overall deadline: ``download_timeout_s + size / min_rate_bytes_s``."""
        return self.cfg.download_timeout_s + size / self.cfg.min_rate_bytes_s

    def _download(
        self, r: R.Rollout, base: str, fetched: Fetched, cancel: Cancel
    ) -> tuple[Entry, Path]:
        m = fetched.manifest
        mf = m.model_file
        entry = Entry(
            id=f"{m.name}/{m.version}-{mf.sha256[:12]}",
            name=m.name,
            version=m.version,
            seq=m.seq,
            sha256=mf.sha256,
            size=mf.size,
            file=mf.name,
        )
        need = sum(f.size for f in m.files)
        if need > self.cfg.max_staging_bytes:
            raise ReleaseTooLarge(
                f"{m.name} {m.version}: its files add up to {need} bytes, over the "
                f"{self.cfg.max_staging_bytes}-byte staging limit ([updates] max_staging_bytes)"
            )
        self._drop_other_staging(r.deployment.id)
        staging = self.store.staging(r.deployment.id)
        _check_room(staging, m, need)
        total = need or 1
        done_before = 0
        last_sent = [-1.0]

        for f in m.files:
            if f.size > self.cfg.max_file_bytes:
                raise FileTooLarge(
                    f"{f.name}: declared {f.size} bytes, over the {self.cfg.max_file_bytes}-byte "
                    "cap ([updates] max_file_bytes)"
                )
            final = staging / f.name
            if final.is_file() and not final.is_symlink() and final.stat().st_size == f.size:
                done_before += f.size
                continue

            def progress(done: int, size: int, before: int = done_before) -> None:
                frac = (before + done) / total
                if frac - last_sent[0] >= 0.1 or done == size:
                    last_sent[0] = frac
                    self.advance(r, "progress", progress=frac)

            part = staging / f".{f.name}.part"
            self.fetcher.download(
                join_url(base, f.name), part, size=f.size, sha256=f.sha256, progress=progress,
                deadline_s=self.file_deadline_s(f.size), cancel=cancel,
            )
            os.replace(part, final)
            fsync_dir(staging)
            done_before += f.size
        write_atomic(staging / MANIFEST_NAME, fetched.raw)
        if fetched.signature is not None:
            write_atomic(staging / SIGNATURE_NAME, fetched.signature)
        desc_name = Path(mf.name).with_suffix(".json").name
        if desc_name not in {f.name for f in m.files}:
            write_atomic(staging / desc_name, json.dumps(m.postprocessing, indent=1).encode())
        return entry, staging

    def _drop_other_staging(self, keep: str) -> None:
        """Staging holds one deployment at a time: the leftovers of any other go."""
        root = self.store.staging_root
        if not root.is_dir():
            return
        mine = self.store.staging(keep).name
        for d in root.iterdir():
            if d.name != mine:
                self.store.drop_staging(d.name)

    def _verify(self, staging: Path, m: Manifest, entry: Entry) -> None:
        with open(staging / m.model.file, "rb") as fh:
            head = fh.read(8)
        if head[4:8] != TFLITE_MAGIC:
            raise NotTFLite(
                f"{m.model.file}: not a TFLite model (no TFL3 flatbuffer identifier); "
                "publish the .tflite file itself"
            )
        self.store.install(staging, entry)
        self.store.verify(entry)

    def _discard(self, entry: Entry) -> None:
        s = self.store.load()
        if entry.id in s.referenced():
            return
        self.store.discard(entry)


def _check(cancel: Cancel) -> None:
    if cancel.is_set():
        raise _cancelled_error(cancel)


def _cancelled_error(cancel: Cancel) -> DownloadCancelled:
    detail = f": {cancel.detail}" if cancel.detail else ""
    return DownloadCancelled(f"update {describe(cancel.reason)}{detail}", why=cancel.reason)


def _check_room(staging: Path, m: Manifest, need: int) -> None:
    """Refuse before writing when the disk cannot hold what is still to download."""
    have = 0
    for f in m.files:
        for p in (staging / f.name, staging / f".{f.name}.part"):
            if p.is_file() and not p.is_symlink():
                have += min(p.stat().st_size, f.size)
                break
    free = shutil.disk_usage(staging).free
    if need - have > free:
        raise DiskFull(
            f"{staging.parent}: {need - have} bytes still to download, only {free} free; "
            "free space in the state directory"
        )
