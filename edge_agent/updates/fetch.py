"""Fetching registry files over http(s):// and file://: size caps, Range resume, sha256.

Thin I/O around the standard library (``urllib.request``/``ssl``): no extra dependency. A
download appends to a ``.part`` file; after a cut connection it asks for the rest with
``Range: bytes=N-`` and keeps hashing where it left off. Every read is bounded: a manifest by
its cap, a file by its declared size (one byte more is "larger than declared").

Every call has an overall deadline besides the per-read ``timeout_s`` (a registry sending one
byte per second never trips a per-read timeout): each socket read waits at most until the
deadline, and past it the call ends with :class:`DownloadTimeout`, retries included. Reads take
whatever has arrived (``read1``), so every byte received is on disk before the next read: a
cut or a deadline loses nothing for the resume. A :class:`.cancel.Cancel` token ends a call
from another thread at once (its sockets are shut down under the blocked read).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import Any, BinaryIO

from .cancel import Cancel, describe
from .errors import (
    DiskFull,
    DownloadCancelled,
    DownloadError,
    DownloadTimeout,
    FileTooLarge,
    WrongHash,
    WrongSize,
)

CHUNK = 64 * 1024
Progress = Callable[[int, int], None]


class NotFound(DownloadError):
    reason = "not_found"


def join_url(base: str, *parts: str) -> str:
    base = base.rstrip("/")
    return base + "/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)


class _Deadline:
    """The overall deadline of one call, and the cancel token that may end it sooner.

    Every socket the call opens is registered as soon as it is connected: at the deadline a
    timer shuts them down (``expiry``), as a cancel does, so not even a server that trickles
    its *headers* one byte at a time outlives it.
    """

    def __init__(self, url: str, seconds: float | None, cancel: Cancel | None) -> None:
        self.url = url
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds
        self.cancel = cancel
        self.expiry = Cancel()
        self.socks: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        if seconds is not None:
            self._timer = threading.Timer(max(seconds, 0.0), self.expiry.cancel, ("deadline",))
            self._timer.daemon = True
            self._timer.start()

    def left(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def read_timeout(self, per_read: float) -> float:
        left = self.left()
        return per_read if left is None else max(min(per_read, left), 0.001)

    def register(self, sock: socket.socket) -> None:
        self.socks.append(sock)
        self.expiry.register(sock)
        if self.cancel is not None:
            self.cancel.register(sock)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sock in self.socks:
            self.expiry.unregister(sock)
            if self.cancel is not None:
                self.cancel.unregister(sock)

    def check(self, done: int | None = None) -> None:
        """Raise if cancelled or past the deadline (``done``: bytes received so far)."""
        c = self.cancel
        if c is not None and c.is_set():
            raise DownloadCancelled(f"{self.url}: download {describe(c.reason)}", why=c.reason)
        left = self.left()
        if self.expiry.is_set() or (left is not None and left <= 0):
            got = "" if done is None else f" ({done} bytes received)"
            raise DownloadTimeout(
                f"{self.url}: not finished within its {self.seconds:g} s deadline{got}; the "
                "registry is too slow or stalled ([updates] download_timeout_s, "
                "min_rate_bytes_s)"
            )


class _Conn(http.client.HTTPConnection):
    """An HTTP connection that hands its socket to ``on_sock`` once connected (for https,
    :class:`_TLSConn`: once the TLS handshake is done)."""

    def __init__(self, *args: Any, on_sock: Callable[[socket.socket], None], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._on_sock = on_sock

    def connect(self) -> None:
        super().connect()
        self._on_sock(self.sock)


class _TLSConn(_Conn, http.client.HTTPSConnection):
    pass


class _Handler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens http:// and https:// with connections that register their sockets."""

    def __init__(self, context: ssl.SSLContext, on_sock: Callable[[socket.socket], None]) -> None:
        super().__init__(context=context)
        self.context = context
        self.on_sock = on_sock

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_Conn, on_sock=self.on_sock), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        conn = functools.partial(_TLSConn, on_sock=self.on_sock)
        return self.do_open(conn, req, context=self.context)


class _Stream:
    """An open registry response: reads what has arrived, each read bounded by the deadline."""

    def __init__(self, raw: BinaryIO, dl: _Deadline, per_read: float,
                 sock: socket.socket | None = None) -> None:
        self.raw = raw
        self.dl = dl
        self.per_read = per_read
        self.sock = sock

    def read(self, n: int, done: int) -> bytes:
        """Up to ``n`` bytes (b"" at the end); DownloadError on a cut, Timeout, Cancelled."""
        self.dl.check(done)
        if self.sock is not None:
            self.sock.settimeout(self.dl.read_timeout(self.per_read))
        read1 = getattr(self.raw, "read1", None)
        try:
            chunk: bytes = read1(n) if read1 is not None else self.raw.read(n)
        except (OSError, HTTPException, ValueError) as exc:
            self.dl.check(done)
            if isinstance(exc, TimeoutError):
                raise DownloadError(
                    f"{self.dl.url}: no data for {self.per_read:g} s at {done} bytes"
                ) from None
            raise DownloadError(f"{self.dl.url}: connection cut at {done} bytes: {exc}") from None
        if not chunk:
            self.dl.check(done)  # a cancel shuts the socket down: that reads as the end
        return chunk

    def close(self) -> None:
        self.raw.close()


class Fetcher:
    """Reads registry URLs; ``retries`` bounds the resumes of one file; ``timeout_s`` is the
    longest wait for one read (a stall), a call's ``deadline_s`` the longest for all of it."""

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
    def _open(self, url: str, dl: _Deadline, offset: int = 0) -> tuple[_Stream, int, int | None]:
        """Open ``url`` at ``offset``.

        Returns the stream, the offset it really starts at and the whole file's size when the
        server tells it (Content-Range / Content-Length; fstat for file://).
        """
        dl.check()
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
            return _Stream(f, dl, self.timeout_s), offset, os.fstat(f.fileno()).st_size
        if scheme not in ("http", "https"):
            raise DownloadError(f"{url}: unsupported scheme {scheme!r} (http, https, file)")
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        req = urllib.request.Request(url, headers=headers)
        opener = urllib.request.build_opener(_Handler(self._ssl, dl.register))
        try:
            resp = opener.open(req, timeout=dl.read_timeout(self.timeout_s))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFound(f"{url}: not found (HTTP 404)") from None
            if exc.code == 416 and offset:
                return self._open(url, dl, 0)
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            dl.check()
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
        sock = dl.socks[-1] if dl.socks else None
        return _Stream(resp, dl, self.timeout_s, sock), start, total

    # -- small files ----------------------------------------------------------------------
    def get_bytes(
        self, url: str, cap: int, *, deadline_s: float | None = None, cancel: Cancel | None = None
    ) -> bytes:
        """The body of ``url``, at most ``cap + 1`` bytes (the caller checks the cap)."""
        dl = _Deadline(url, deadline_s, cancel)
        try:
            stream, _, _ = self._open(url, dl)
            try:
                buf = bytearray()
                while len(buf) < cap + 1:
                    chunk = stream.read(min(CHUNK, cap + 1 - len(buf)), len(buf))
                    if not chunk:
                        break
                    buf += chunk
                return bytes(buf)
            finally:
                stream.close()
        finally:
            dl.close()

    def get_optional(
        self, url: str, cap: int, *, deadline_s: float | None = None, cancel: Cancel | None = None
    ) -> bytes | None:
        try:
            return self.get_bytes(url, cap, deadline_s=deadline_s, cancel=cancel)
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
        deadline_s: float | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        """Download ``url`` into ``part`` (resuming what is there) and check size and sha256.

        The sha256 is computed while the bytes stream in (after a resume, the bytes already on
        disk are hashed first). The file is fsynced before returning; the caller renames it.
        ``deadline_s`` bounds the whole download, resumes included (:class:`DownloadTimeout`);
        a full disk is :class:`DiskFull`. What was received stays in ``part`` either way.
        """
        dl = _Deadline(url, deadline_s, cancel)
        try:
            digest, have = self._download_retrying(url, part, size, progress, dl)
        finally:
            dl.close()
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

    def _download_retrying(
        self, url: str, part: Path, size: int, progress: Progress | None, dl: _Deadline
    ) -> tuple[str, int]:
        attempt = 0
        while True:
            try:
                return self._download_once(url, part, size, progress, dl)
            except DownloadError as exc:
                final = isinstance(
                    exc, (FileTooLarge, WrongSize, NotFound, DownloadTimeout, DownloadCancelled)
                )
                if final or attempt >= self.retries:
                    raise
                attempt += 1
                left = dl.left()
                pause = self.backoff_s * attempt
                if (dl.cancel or dl.expiry).wait(pause if left is None else min(pause, left)):
                    dl.check()

    def _download_once(
        self, url: str, part: Path, size: int, progress: Progress | None, dl: _Deadline
    ) -> tuple[str, int]:
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            have = 0
        stream, start, total = self._open(url, dl, have)
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
                try:
                    while True:
                        chunk = stream.read(min(CHUNK, size + 1 - done) or 1, done)
                        if not chunk:
                            break
                        if done + len(chunk) > size:
                            raise FileTooLarge(
                                f"{url}: larger than the {size} bytes the manifest declares; "
                                "stopped reading"
                            )
                        _write_all(fd, chunk, part)
                        done += len(chunk)
                        h.update(chunk)
                        if progress:
                            progress(done, size)
                finally:
                    _fsync(fd, part)  # every byte received is kept for the resume
            finally:
                os.close(fd)
        finally:
            stream.close()
        if done < size:  # the server closed the connection early: a cut, resume it
            raise DownloadError(f"{url}: connection cut at {done} of {size} bytes")
        return h.hexdigest(), done


def _write_all(fd: int, data: bytes, where: Path) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as exc:
            raise _disk_error(exc, where) from None
        view = view[n:]


def _fsync(fd: int, where: Path) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise _disk_error(exc, where) from None


def _disk_error(exc: OSError, where: Path) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"{where.parent}: the disk is full ({exc.strerror}); free space in the state "
            "directory or lower [updates] max_staging_bytes"
        )
    return exc


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


sha256_file = _sha256_file
