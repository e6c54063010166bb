"""Helpers for the update tests: a real nginx registry, a test CA, hand-made releases."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from edge_agent.updates.keys import keygen, load_private, sign


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CertAuthority:
    ca: Path
    cert: Path
    key: Path


def make_ca(d: Path) -> CertAuthority:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, made with openssl."""
    d.mkdir(parents=True, exist_ok=True)

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return CertAuthority(d / "ca.pem", d / "server.pem", d / "server.key")


@dataclass
class Nginx:
    root: Path
    http_url: str
    https_url: str | None
    access_log: Path


@contextmanager
def nginx(root: Path, work: Path, tls: CertAuthority | None = None) -> Iterator[Nginx]:
    """A real nginx serving ``root`` (Range requests are built in) on free ports."""
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    tls_port = free_port() if tls else None
    user = "user root;\n" if os.geteuid() == 0 else ""
    server_tls = ""
    if tls:
        server_tls = f"""
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {tls.cert};
        ssl_certificate_key {tls.key};
        root {root};
    }}"""
    conf = work / "nginx.conf"
    conf.write_text(f"""{user}worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    types {{ application/json json; application/octet-stream tflite; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}{server_tls}
}}
""")
    proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                if tls_port:
                    socket.create_connection(("127.0.0.1", tls_port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"nginx did not start: {err}") from None
                time.sleep(0.05)
        yield Nginx(
            root,
            f"http://127.0.0.1:{port}",
            f"https://localhost:{tls_port}" if tls_port else None,
            work / "access.log",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_doc(
    name: str = "demo",
    version: str = "1.0",
    seq: int = 1,
    files: dict[str, bytes] | None = None,
    model_file: str = "model.tflite",
    input_shape: list[int] | None = None,
    expires_in: timedelta = timedelta(days=30),
    **extra: Any,
) -> dict[str, Any]:
    files = files if files is not None else {model_file: b"\0\0\0\0TFL3" + b"x" * 100}
    now = datetime.now(timezone.utc)
    doc: dict[str, Any] = {
        "schema": 1,
        "name": name,
        "version": version,
        "seq": seq,
        "created": now.isoformat(),
        "expires": (now + expires_in).isoformat(),
        "files": [{"name": n, "size": len(b), "sha256": sha(b)} for n, b in files.items()],
        "model": {
            "file": model_file,
            "inputs": [{"shape": input_shape or [1, 8, 8, 3], "dtype": "int8"}],
            "outputs": [{"shape": [1, 10], "dtype": "int8"}],
        },
        "postprocessing": {},
    }
    doc.update(extra)
    return doc


def write_release(
    registry: Path, key: Path, doc: dict[str, Any], files: dict[str, bytes], *,
    signed: bool = True,
) -> Path:
    """Write a hand-made release ``<registry>/<name>/<version>/`` (no model runtime needed)."""
    out = registry / doc["name"] / doc["version"]
    out.mkdir(parents=True, exist_ok=True)
    raw = (json.dumps(doc, indent=1) + "\n").encode()
    (out / "manifest.json").write_bytes(raw)
    if signed:
        (out / "manifest.json.sig").write_bytes(sign(load_private(key), raw))
    for n, b in files.items():
        if "/" not in n and "\0" not in n and n not in ("..", "."):
            (out / n).write_bytes(b)
    return out


def new_key(d: Path, name: str = "release.key") -> tuple[Path, Path]:
    priv, pub, _ = keygen(d / name)
    return priv, pub


def seed_store(state_dir: Path, registry_url: str, pub: Path, name: str, version: str,
               input_shape: list[int]) -> None:
    """Give a device ``name version`` as its committed active model, installed through the
    real updater (download, checks, preflight) from ``registry_url``."""
    from edge_agent.config import UpdatesConfig
    from edge_agent.updates.keys import TrustStore
    from edge_agent.updates.state import commit_trial
    from edge_agent.updates.store import Store
    from edge_agent.updates.updater import Updater, new_deployment

    store = Store(state_dir)
    records: list[dict[str, Any]] = []
    up = Updater(UpdatesConfig(trusted_keys=[pub]), store, TrustStore.from_files([pub]),
                 publish=records.append)
    r = up.start(new_deployment(name, version, registry_url))
    assert up.prepare(r, input_shape=input_shape, runtime="litert") is not None, records
    up.advance(r, "swapped")
    up.advance(r, "healthy", change=commit_trial)


class TrickleServer:
    """A real threaded HTTP server over ``root`` that sends slowly: files whose name ends with
    one of ``slow`` go out at ``rate`` bytes/s (``None``: full speed; ``0``: headers, then
    nothing) and, with ``stall_after``, nothing more after that many bytes of a response (the
    connection stays open); other files at full speed. ``header_rate``: the status line and
    headers of every response go out at that many bytes/s. ``Range: bytes=N-`` is answered with
    206. ``served`` counts the body bytes written per path, ``ranges`` the Range header of
    each request (None: none)."""

    def __init__(self, root: Path, *, rate: int | None = 1, slow: tuple[str, ...] = (".tflite",),
                 stall_after: int | None = None, header_rate: int | None = None) -> None:
        import http.server
        import threading

        self.root, self.rate, self.slow, self.stall_after = root, rate, slow, stall_after
        self.header_rate = header_rate
        self.served: dict[str, int] = {}
        self.ranges: list[tuple[str, str | None]] = []
        self.closing = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner._serve(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> TrickleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, h: Any) -> None:
        import urllib.parse

        rel = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path).lstrip("/")
        path = (self.root / rel).resolve()
        rng = h.headers.get("Range")
        self.ranges.append((rel, rng))
        if not path.is_file() or self.root.resolve() not in path.parents:
            h.send_error(404)
            return
        data = path.read_bytes()
        start = int(rng.split("=", 1)[1].split("-", 1)[0]) if rng else 0
        body = data[start:]
        h.send_response(206 if rng else 200)
        if rng:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(body)))
        if self.header_rate:
            h.send_header("X-Pad", "p" * 200)
            head = b"".join(h._headers_buffer) + b"\r\n"
            h._headers_buffer = []
            try:
                for i in range(len(head)):
                    if self.closing.wait(1 / self.header_rate):
                        return
                    h.wfile.write(head[i:i + 1])
                    h.wfile.flush()
            except OSError:
                return  # the client went away
        else:
            h.end_headers()
        slow = rel.endswith(self.slow)
        sent = 0
        try:
            stall = self.stall_after if slow else None
            rate = self.rate if slow else None
            while sent < len(body) and not self.closing.is_set():
                if (stall is not None and sent >= stall) or rate == 0:
                    self.closing.wait(0.1)
                    continue
                step = len(body) if rate is None else max(1, rate // 10)
                if stall is not None:
                    step = min(step, stall - sent)
                piece = body[sent:sent + step]
                h.wfile.write(piece)
                h.wfile.flush()
                sent += len(piece)
                self.served[rel] = self.served.get(rel, 0) + len(piece)
                if rate and sent < len(body):
                    self.closing.wait(len(piece) / rate)
        except OSError:
            pass  # the client went away
        h.close_connection = True


def fill_disk(path: Path) -> None:
    """Write zeros to ``path`` until its filesystem is full (ENOSPC), as another writer would."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def small_tmpfs() -> Iterator[Callable[[Path], Path]]:
    """``mount(d)`` puts a real 2 MiB tmpfs at ``d`` (with what ``d`` held copied in); all
    unmounted at the end. Skips the test when mounting is not permitted."""
    import pytest

    mounted: list[Path] = []

    def mount(d: Path) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        keep = d.with_name(d.name + ".before")
        d.rename(keep)
        d.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs (needs root/CAP_SYS_ADMIN): {res.stderr.strip()}")
        mounted.append(d)
        subprocess.run(["cp", "-a", f"{keep}/.", str(d)], check=True)
        return d

    try:
        yield mount
    finally:
        for d in mounted:
            subprocess.run(["umount", "-l", str(d)], check=False)
