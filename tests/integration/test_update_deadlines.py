"""Downloads that never end, against a real HTTP server that trickles or stalls: the overall
deadline (``download_timeout``), every received byte kept for the resume, cancel from another
thread, and a whole rollout through the Updater (timeout, cancel, a full disk on a tmpfs)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import UpdatesConfig
from edge_agent.updates import errors as E
from edge_agent.updates import rollout as R
from edge_agent.updates.cancel import Cancel
from edge_agent.updates.fetch import Fetcher
from edge_agent.updates.keys import TrustStore
from edge_agent.updates.store import Store
from edge_agent.updates.updater import Updater, new_deployment
from tests.support.updates import (
    TrickleServer,
    fill_disk,
    manifest_doc,
    new_key,
    nginx,
    sha,
    small_tmpfs,
    write_release,
)

BLOB = os.urandom(200_000)


@pytest.fixture()
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "blob.tflite").write_bytes(BLOB)
    (root / "manifest.json").write_bytes(b"{}" * 500)
    return root


def test_trickling_file_ends_at_its_deadline_and_keeps_every_byte(www: Path,
                                                                 tmp_path: Path) -> None:
    part = tmp_path / "blob.part"
    with TrickleServer(www, rate=2000) as srv:
        with pytest.raises(E.DownloadTimeout, match="deadline"):
            Fetcher().download(f"{srv.url}/blob.tflite", part, size=len(BLOB),
                               sha256=sha(BLOB), deadline_s=1.0)
    got = part.read_bytes()
    # the per-read timeout (30 s) never fired: bytes kept arriving; all of them are on disk
    assert 0 < len(got) < len(BLOB) and got == BLOB[: len(got)]
    assert len(got) < 64 * 1024  # less than one read buffer: lost before the fix


def test_bytes_before_a_stall_are_kept_and_resumed_with_range(www: Path, tmp_path: Path,
                                                              ) -> None:
    part = tmp_path / "blob.part"
    with TrickleServer(www, rate=None, stall_after=5000) as srv:
        with pytest.raises(E.DownloadError, match=r"no data for 0\.5 s at 5000 bytes"):
            Fetcher(timeout_s=0.5, retries=0).download(
                f"{srv.url}/blob.tflite", part, size=len(BLOB), sha256=sha(BLOB))
    assert part.read_bytes() == BLOB[:5000]
    with nginx(www, tmp_path / "nginx") as n:
        Fetcher().download(f"{n.http_url}/blob.tflite", part, size=len(BLOB), sha256=sha(BLOB))
        last = n.access_log.read_text().strip().splitlines()[-1]
    assert part.read_bytes() == BLOB and '"GET /blob.tflite HTTP/1.1" 206' in last


def test_the_deadline_covers_resumes(www: Path, tmp_path: Path) -> None:
    """A server that stalls after each 3000 bytes: each read times out, each resume makes
    progress, and the whole still ends at the overall deadline, not after retries x timeout."""
    part = tmp_path / "blob.part"
    with TrickleServer(www, rate=None, stall_after=3000) as srv:
        with pytest.raises(E.DownloadTimeout):
            Fetcher(timeout_s=0.3, retries=1000, backoff_s=0.0).download(
                f"{srv.url}/blob.tflite", part, size=len(BLOB), sha256=sha(BLOB),
                deadline_s=2.0)
        resumed = [r for p, r in srv.ranges if p == "blob.tflite" and r]
    size = part.stat().st_size
    assert size % 3000 == 0 and size >= 6000 and part.read_bytes() == BLOB[:size]
    assert resumed and resumed[0] == "bytes=3000-"


def test_manifest_deadline(www: Path) -> None:
    with TrickleServer(www, rate=100, slow=(".json",)) as srv:
        with pytest.raises(E.DownloadTimeout, match=r"manifest\.json: not finished"):
            Fetcher().get_bytes(f"{srv.url}/manifest.json", 10_000, deadline_s=0.5)


def test_headers_trickled_byte_by_byte_end_at_the_deadline(www: Path) -> None:
    """Each header byte arrives well within the 30 s read timeout; the deadline still holds."""
    with TrickleServer(www, rate=None, header_rate=5) as srv:
        with pytest.raises(E.DownloadTimeout, match="deadline"):
            Fetcher().get_bytes(f"{srv.url}/manifest.json", 10_000, deadline_s=1.0)


def test_cancel_during_trickled_headers(www: Path, tmp_path: Path) -> None:
    tok = Cancel()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Fetcher().download(f"{srv.url}/blob.tflite", tmp_path / "p", size=len(BLOB),
                               sha256=sha(BLOB), cancel=tok)
        except BaseException as exc:
            errors.append(exc)

    with TrickleServer(www, rate=None, header_rate=5) as srv:
        t = threading.Thread(target=run)
        t.start()
        while not srv.ranges:
            t.join(0.05)
        tok.cancel("shutdown")
        t.join(20)  # a hang guard: the headers alone would take a minute
        assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], E.DownloadCancelled), errors
    assert errors[0].why == "shutdown"


def test_cancel_from_another_thread_ends_a_stalled_read_at_once(www: Path,
                                                                tmp_path: Path) -> None:
    part = tmp_path / "blob.part"
    tok = Cancel()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Fetcher().download(f"{srv.url}/blob.tflite", part, size=len(BLOB),
                               sha256=sha(BLOB), cancel=tok)
        except BaseException as exc:
            errors.append(exc)

    with TrickleServer(www, rate=None, stall_after=1234) as srv:
        t = threading.Thread(target=run)
        t.start()
        # stalled = the server sent its 1234 bytes and the reader wrote them all (os.write, no
        # buffer): cancelling earlier could drop bytes still in the socket's receive buffer,
        # which the resume fetches again but this test's check would miss
        while srv.served.get("blob.tflite", 0) < 1234 or _size(part) < 1234:
            assert t.is_alive(), errors
            t.join(0.05)
        tok.cancel("cancel", "operator cancel")
        t.join(20)  # a hang guard: without the socket shutdown it blocks 30 s per read x 6
        assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], E.DownloadCancelled), errors
    assert errors[0].why == "cancel" and part.read_bytes() == BLOB[:1234]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# -- whole rollouts through the Updater ----------------------------------------------------------
class Bench:
    def __init__(self, tmp: Path, files: dict[str, bytes], **cfg: Any) -> None:
        self.key, self.pub = new_key(tmp)
        self.registry = tmp / "registry"
        doc = manifest_doc(name="demo", version="2.0", seq=2, files=files)
        write_release(self.registry, self.key, doc, files)
        self.state = tmp / "state"
        self.records: list[dict[str, Any]] = []
        self.store = Store(self.state)
        self.up = Updater(UpdatesConfig(trusted_keys=[self.pub], **cfg), self.store,
                          TrustStore.from_files([self.pub]), publish=self.records.append)

    def run(self, url: str, cancel: Cancel | None = None) -> R.Rollout:
        r = self.up.start(new_deployment("demo", "2.0", url, "dep1"))
        assert self.up.prepare(r, input_shape=None, runtime=None, cancel=cancel) is None
        return r

    def staging_left(self) -> list[Path]:
        root = self.store.staging_root
        return sorted(root.rglob("*")) if root.exists() else []


MODEL = b"\0\0\0\0TFL3" + os.urandom(100_000)


def test_rollout_on_a_trickling_registry_fails_with_download_timeout(tmp_path: Path) -> None:
    b = Bench(tmp_path, {"model.tflite": MODEL}, download_timeout_s=0.5, min_rate_bytes_s=10**6)
    with TrickleServer(b.registry, rate=1000) as srv:
        r = b.run(srv.url)
    assert r.state == R.FAILED and r.deployment.reason == "download_timeout", b.records
    assert "[updates] download_timeout_s" in r.deployment.detail
    saved = b.store.load().deployment  # persisted, final
    assert saved is not None and (saved.state, saved.final) == (R.FAILED, True)
    assert b.staging_left() == []  # a final rollout frees its staging


def test_rollout_cancelled_mid_download(tmp_path: Path) -> None:
    b = Bench(tmp_path, {"model.tflite": MODEL})
    tok = Cancel()
    with TrickleServer(b.registry, rate=None, stall_after=100) as srv:
        threading.Timer(0.5, tok.cancel, args=("cancel", "operator cancel")).start()
        r = b.run(srv.url, tok)
    assert (r.state, r.deployment.reason) == (R.CANCELLED, "cancelled"), b.records
    assert [x["state"] for x in b.records if not x.get("progress")] == [
        "received", "downloading", "cancelled"]
    assert b.records[-1]["state"] == "cancelled" and b.records[-1]["final"]
    assert "operator cancel" in b.records[-1]["detail"] or "cancelled by command" in (
        b.records[-1]["detail"])
    assert b.staging_left() == []


def test_shutdown_leaves_the_rollout_to_resume_with_its_partial_file(tmp_path: Path) -> None:
    b = Bench(tmp_path, {"model.tflite": MODEL})
    tok = Cancel()
    with TrickleServer(b.registry, rate=None, stall_after=4321) as srv:
        threading.Timer(0.5, tok.cancel, args=("shutdown",)).start()
        r = b.run(srv.url, tok)
    assert r.state == R.DOWNLOADING and not r.final
    assert b.store.load().deployment == r.deployment  # persisted: it resumes at the next start
    part = b.store.staging("dep1") / ".model.tflite.part"
    assert part.read_bytes() == MODEL[:4321]


def test_a_release_over_the_staging_limit_is_refused_before_downloading(tmp_path: Path) -> None:
    b = Bench(tmp_path, {"model.tflite": MODEL, "golden.npz": os.urandom(5000)},
              max_staging_bytes=100_000)
    with TrickleServer(b.registry, rate=0) as srv:  # the file would never arrive
        r = b.run(srv.url)
    assert (r.state, r.deployment.reason) == (R.REJECTED, "release_too_large")
    assert "max_staging_bytes" in r.deployment.detail
    assert not [p for p, _ in srv.ranges if not p.endswith((".json", ".sig"))]


def test_stale_staging_of_another_deployment_is_dropped(tmp_path: Path) -> None:
    b = Bench(tmp_path, {"model.tflite": MODEL})
    old = b.store.staging("old-dep")
    (old / ".model.tflite.part").write_bytes(b"x" * 1000)
    tok = Cancel()
    with TrickleServer(b.registry, rate=None, stall_after=100) as srv:
        threading.Timer(0.5, tok.cancel, args=("shutdown",)).start()
        r = b.run(srv.url, tok)
    assert r.state == R.DOWNLOADING
    assert not old.exists()  # staging holds one deployment at a time
    assert (b.store.staging("dep1") / ".model.tflite.part").stat().st_size == 100


# -- a full disk: a real small tmpfs -----------------------------------------------------------
@pytest.fixture()
def tmpfs() -> Iterator[Callable[[Path], Path]]:
    with small_tmpfs() as mount:
        yield mount


def test_a_release_larger_than_the_free_space_fails_disk_full_before_writing(
    tmp_path: Path, tmpfs: Callable[[Path], Path]
) -> None:
    big = b"\0\0\0\0TFL3" + os.urandom(3 * 1024 * 1024)
    b = Bench(tmp_path, {"model.tflite": big})
    tmpfs(b.state / "models")
    with nginx(b.registry, tmp_path / "nginx") as n:
        r = b.run(n.http_url)
    assert (r.state, r.deployment.reason) == (R.FAILED, "disk_full"), b.records
    assert "still to download" in r.deployment.detail
    assert b.staging_left() == []


def test_enospc_in_the_middle_of_a_download_fails_disk_full_and_frees_staging(
    tmp_path: Path, tmpfs: Callable[[Path], Path]
) -> None:
    """The disk fills up while the file trickles in (another writer takes the space)."""
    model = b"\0\0\0\0TFL3" + os.urandom(1024 * 1024)
    b = Bench(tmp_path, {"model.tflite": model})
    filler = tmpfs(b.state / "models") / "filler"

    with TrickleServer(b.registry, rate=200_000) as srv:
        threading.Timer(0.5, fill_disk, args=(filler,)).start()
        r = b.run(srv.url)
    assert (r.state, r.deployment.reason) == (R.FAILED, "disk_full"), b.records
    assert "the disk is full" in r.deployment.detail
    assert b.staging_left() == []
    filler.unlink()
    saved = b.store.load().deployment  # the outcome was persisted
    assert saved is not None and (saved.state, saved.reason) == (R.FAILED, "disk_full")
