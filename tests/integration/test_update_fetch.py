"""Downloads from a real nginx (HTTP and HTTPS with a test CA), file://, and a cut connection."""

from __future__ import annotations

import os
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from edge_agent.updates import errors as E
from edge_agent.updates.fetch import Fetcher, NotFound
from tests.support.updates import CertAuthority, Nginx, make_ca, nginx, sha

BLOB = os.urandom(300_000)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ca: CertAuthority) -> Iterator[Nginx]:
    root = tmp_path_factory.mktemp("www")
    (root / "blob.bin").write_bytes(BLOB)
    (root / "small.txt").write_bytes(b"hello")
    with nginx(root, tmp_path_factory.mktemp("nginx"), tls=ca) as n:
        yield n


def test_http_download_with_streaming_sha256(server: Nginx, tmp_path: Path) -> None:
    part = tmp_path / "blob.part"
    seen: list[int] = []
    Fetcher().download(f"{server.http_url}/blob.bin", part, size=len(BLOB), sha256=sha(BLOB),
                       progress=lambda d, t: seen.append(d))
    assert part.read_bytes() == BLOB and seen[-1] == len(BLOB)


def test_https_with_test_ca_and_refused_without_it(server: Nginx, ca: CertAuthority,
                                                   tmp_path: Path) -> None:
    assert server.https_url
    assert Fetcher(ca=ca.ca).get_bytes(f"{server.https_url}/small.txt", 100) == b"hello"
    with pytest.raises(E.DownloadError, match="cannot connect"):
        Fetcher().get_bytes(f"{server.https_url}/small.txt", 100)


def test_partial_file_resumes_with_range(server: Nginx, tmp_path: Path) -> None:
    part = tmp_path / "blob.part"
    part.write_bytes(BLOB[:123_456])
    Fetcher().download(f"{server.http_url}/blob.bin", part, size=len(BLOB), sha256=sha(BLOB))
    assert part.read_bytes() == BLOB
    last = server.access_log.read_text().strip().splitlines()[-1]
    assert '"GET /blob.bin HTTP/1.1" 206' in last


def test_file_url_and_its_resume(tmp_path: Path) -> None:
    src = tmp_path / "blob.bin"
    src.write_bytes(BLOB)
    part = tmp_path / "x.part"
    part.write_bytes(BLOB[:1000])
    Fetcher().download(src.as_uri(), part, size=len(BLOB), sha256=sha(BLOB))
    assert part.read_bytes() == BLOB


@pytest.mark.parametrize(
    ("size", "digest", "exc"),
    [
        (len(BLOB), "0" * 64, E.WrongHash),
        (len(BLOB) + 10, sha(BLOB), E.WrongSize),
        (len(BLOB) - 10, sha(BLOB), E.FileTooLarge),
    ],
)
def test_size_and_hash_checks(server: Nginx, tmp_path: Path, size: int, digest: str,
                              exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Fetcher().download(f"{server.http_url}/blob.bin", tmp_path / "p", size=size,
                           sha256=digest)


def test_not_found_and_cap(server: Nginx) -> None:
    with pytest.raises(NotFound):
        Fetcher().get_bytes(f"{server.http_url}/nope", 10)
    assert Fetcher().get_optional(f"{server.http_url}/nope", 10) is None
    assert len(Fetcher().get_bytes(f"{server.http_url}/blob.bin", 1000)) == 1001


class _CuttingHandler(BaseHTTPRequestHandler):
    """Serves BLOB; the first full GET sends half the body and closes the connection."""

    cuts = 0
    requests: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        rng = self.headers.get("Range")
        type(self).requests.append(rng or "full")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = BLOB[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not rng and type(self).cuts == 0:
            type(self).cuts += 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            self.close_connection = True
            return
        self.wfile.write(body)


def test_connection_cut_in_the_middle_resumes(tmp_path: Path) -> None:
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _CuttingHandler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/blob.bin"
        part = tmp_path / "p"
        Fetcher(backoff_s=0.01).download(url, part, size=len(BLOB), sha256=sha(BLOB))
        assert part.read_bytes() == BLOB
        assert _CuttingHandler.requests[0] == "full"
        assert _CuttingHandler.requests[1] == f"bytes={len(BLOB) // 2}-"
    finally:
        srv.shutdown()
        srv.server_close()
