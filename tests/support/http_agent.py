"""A real agent (``python -m edge_agent run``) with its HTTP API on a free port, and a small
HTTP client for it (stdlib only: what the tests see is what any client sees)."""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import ROOT, cli_env
from tests.support.ops import free_port

TOKEN = "t0ken-for-the-http-tests-0123456789"


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:300]!r}>"


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30.0,
         host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Reply:
    conn = http.client.HTTPConnection(host, port, timeout=timeout) if tls is None else \
        http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


class HttpAgent:
    """``sections`` add or override config sections, e.g. ``{"camera": {"source": URL}}``."""

    def __init__(self, tmp: Path, *, token: bool = False, start: bool = True,
                 tls: ssl.SSLContext | None = None, **sections: dict[str, Any]) -> None:
        self.tmp = tmp
        self.tls = tls  # the client's context when the agent serves https (http.cert/key)
        self.port = free_port()
        self.token = TOKEN if token else None
        conf: dict[str, dict[str, Any]] = {
            "device": {"id": "httpdev", "state_dir": str(tmp / "state")},
            "camera": {"source": "demo"},
            "metrics": {"interval_s": 0.5},
            "http": {"enabled": True, "port": self.port},
        }
        if token:
            (tmp / "http.token").write_text(TOKEN + "\n")
            conf["http"]["token_file"] = str(tmp / "http.token")
        for name, values in sections.items():
            conf.setdefault(name, {}).update(values)
        lines = []
        for name, values in conf.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        self.config = tmp / "agent.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = tmp / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    def env(self) -> dict[str, str]:
        env = cli_env()
        env.pop("EDGE_AGENT_HTTP__ENABLED", None)  # tests/conftest.py turns HTTP off
        return env

    def start(self, timeout: float = 120.0) -> None:
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=logf, env=self.env(), cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}: {self.log_text()}")
            try:
                if call(self.port, "GET", "/healthz", timeout=2, tls=self.tls).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()  # never leave it running behind a failed test
        raise RuntimeError(f"agent HTTP not up in {timeout} s: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**h, **(extra or {})}

    def get(self, path: str, **kw: Any) -> Reply:
        return call(self.port, "GET", path, headers=self.headers(kw.pop("headers", None)),
                    tls=self.tls, **kw)

    def post(self, path: str, body: bytes | None = None, **kw: Any) -> Reply:
        return call(self.port, "POST", path, body=body,
                    headers=self.headers(kw.pop("headers", None)), tls=self.tls, **kw)

    def processed(self) -> int:
        """Frames processed by the last heartbeat (0 before the first)."""
        metrics = self.get("/v1/status").json().get("metrics") or {}
        return int((metrics.get("frames") or {}).get("processed") or 0)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)
