"""Helpers for the update tests: a real nginx registry, a test CA, hand-made releases."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
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
