"""Fetching registry files over http(s):// and file://: size caps, Range resume, sha256.

Thin I/O around the standard library (``urllib.request``/``ssl``): no extra dependency. A
download appends to a ``.part`` file; after a cut connection it asks for the rest with
``Range: bytes=N-`` and keeps hashing where it left off. Every read is bounded: a manifest by
its cap, a file by its declared size (one byte more is "larger than declared").
"""

from __future__ import annotations

import hashlib
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from .errors import DownloadError, FileTooLarge, WrongHash, WrongSize

CHUNK = 64 * 1024
Progress = Callable[[int, int], None]


class NotFound(DownloadError):
    reason = "not_found"


def join_url(base: str, *parts: str) -> str:
    base = base.rstrip("/")
    return base + "/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)


class Fetcher:
    """Reads registry URLs; ``retries`` bounds the resumes of one file."""

    def __init__(
        self,
        *,
        ca: Path | None = None,
        timeout_s: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.2,
    ) -> None:
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._ssl = ssl.create_default_context(cafile=str(ca) if ca else None)

    # -- opening --------------------------------------------------------------------------
    def _open(self, url: str, offset: int = 0) -> tuple[BinaryIO, int, int | None]:
        """Open ``url`` at ``offset``.

        Returns the stream, the offset it really starts at and the whole file's size when the
        server tells it (Content-Range / Content-Length; fstat for file://).
        """
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme == "file":
            path = urllib.request.url2pathname(urllib.parse.urlsplit(url).path)
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                raise NotFound(f"{url}: not found") from None
            except OSError as exc:
                raise DownloadError(f"{url}: cannot read: {exc.strerror}") from None
            f.seek(offset)
            return f, offset, os.fstat(f.fileno()).st_size
        if scheme not in ("http", "https"):
            raise DownloadError(f"{url}: unsupported scheme {scheme!r} (http, https, file)")
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        req = urllib.request.Request(url, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout_s, context=self._ssl)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFound(f"{url}: not found (HTTP 404)") from None
            if exc.code == 416 and offset:
                return self._open(url, 0)
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(f"{url}: cannot connect: {reason}") from None
        start, total = 0, None
        if resp.status == 206:
            cr = resp.headers.get("Content-Range", "")
            try:
                span, _, whole = cr.split(" ", 1)[1].partition("/")
                start = int(span.split("-", 1)[0])
                total = int(whole) if whole.isdigit() else None
            except (IndexError, ValueError):
                resp.close()
                raise DownloadError(f"{url}: bad Content-Range {cr!r}") from None
        else:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        return resp, start, total

    # -- small files ----------------------------------------------------------------------
    def get_bytes(self, url: str, cap: int) -> bytes:
        """The body of ``url``, at most ``cap + 1`` bytes (the caller checks the cap)."""
        stream, _, _ = self._open(url)
        try:
            return _read_upto(stream, cap + 1, url)
        finally:
            stream.close()

    def get_optional(self, url: str, cap: int) -> bytes | None:
        try:
            return self.get_bytes(url, cap)
        except NotFound:
            return None

    # -- model files ----------------------------------------------------------------------
    def download(
        self,
        url: str,
        part: Path,
        *,
        size: int,
        sha256: str,
        progress: Progress | None = None,
    ) -> None:
        """Download ``url`` into ``part`` (resuming what is there) and check size and sha256.

        The sha256 is computed while the bytes stream in (after a resume, the bytes already on
        disk are hashed first). The file is fsynced before returning; the caller renames it.
        """
        attempt = 0
        while True:
            try:
                digest, have = self._download_once(url, part, size, progress)
                break
            except DownloadError as exc:
                final = isinstance(exc, (FileTooLarge, WrongSize, NotFound))
                if final or attempt >= self.retries:
                    raise
                attempt += 1
                time.sleep(self.backoff_s * attempt)
        if have != size:
            raise WrongSize(
                f"{url}: got {have} bytes, the manifest declares {size}; "
                "the registry copy is truncated or the manifest is stale"
            )
        if digest != sha256:
            raise WrongHash(
                f"{url}: sha256 {digest[:16]}... does not match the manifest's "
                f"{sha256[:16]}...; the file was altered or corrupted"
            )

    def _download_once(
        self, url: str, part: Path, size: int, progress: Progress | None
    ) -> tuple[str, int]:
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            have = 0
        stream, start, total = self._open(url, have)
        try:
            if total is not None and total > size:
                raise FileTooLarge(
                    f"{url}: the registry serves {total} bytes, more than the {size} the "
                    "manifest declares; not downloading it"
                )
            if total is not None and total < size:
                raise WrongSize(
                    f"{url}: the registry serves {total} bytes, the manifest declares {size}; "
                    "the registry copy is truncated or the manifest is stale"
                )
            fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                os.ftruncate(fd, start)
                h = hashlib.sha256()
                os.lseek(fd, 0, os.SEEK_SET)
                left = start
                while left:
                    block = os.read(fd, min(1024 * 1024, left))
                    h.update(block)
                    left -= len(block)
                done = start
                while True:
                    try:
                        chunk = stream.read(min(CHUNK, size + 1 - done) or 1)
                    except (OSError, HTTPException) as exc:
                        os.fsync(fd)
                        cut = f"{url}: connection cut at {done} bytes: {exc}"
                        raise DownloadError(cut) from None
                    if not chunk:
                        break
                    done += len(chunk)
                    if done > size:
                        raise FileTooLarge(
                            f"{url}: larger than the {size} bytes the manifest declares; "
                            "stopped reading"
                        )
                    h.update(chunk)
                    os.write(fd, chunk)
                    if progress:
                        progress(done, size)
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            stream.close()
        if done < size:  # the server closed the connection early: a cut, resume it
            raise DownloadError(f"{url}: connection cut at {done} of {size} bytes")
        return h.hexdigest(), done


def _read_upto(stream: BinaryIO, limit: int, url: str) -> bytes:
    buf = bytearray()
    while len(buf) < limit:
        try:
            chunk = stream.read(min(CHUNK, limit - len(buf)))
        except (OSError, HTTPException) as exc:
            raise DownloadError(f"{url}: connection cut: {exc}") from None
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


sha256_file = _sha256_file
