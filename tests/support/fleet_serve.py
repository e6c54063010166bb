"""``edge-agent fleet serve`` as a child process for the tests, and a client of its API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.fleet.client import FleetClient
from edge_agent.fleet.errors import FleetServerError
from tests.support.helpers import ROOT, cli_env
from tests.support.updates import free_port


class FleetServe:
    """``fleet serve -c <dir>/fleet.toml``; ``kill()`` is SIGKILL, ``stop()`` SIGTERM."""

    def __init__(self, workdir: Path, broker_port: int, *, token: str | None = None,
                 fleet: dict[str, Any] | None = None, database: str = "fleet.sqlite") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "fleet.toml"
        self.log = workdir / "serve.log"
        self.token = token
        lines = ["[fleet]", f"database = {json.dumps(database)}",
                 f'listen = "127.0.0.1:{self.port}"']
        if token:
            (workdir / "token").write_text(token + "\n")
            lines.append('token_file = "token"')
        lines += [f"{k} = {json.dumps(v)}" for k, v in (fleet or {}).items()]
        lines += ["[mqtt]", 'host = "127.0.0.1"', f"port = {broker_port}"]
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = FleetClient(self.url, token, timeout=10)

    def start(self, timeout: float = 30) -> FleetServe:
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "fleet", "serve", "-c", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=logf, env=cli_env(), cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fleet serve exited {self.proc.returncode}: {self.tail()}")
            try:
                if self.client.get("/healthz")["ok"]:
                    return self
            except FleetServerError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"fleet serve did not get ready: {self.tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def get(self, path: str) -> Any:
        return self.client.get(path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(path, body)

    def devices(self) -> dict[str, dict[str, Any]]:
        return {d["device"]: d for d in self.get("/v1/devices")}

    def wait(self, what: Callable[[], Any], timeout: float = 30, step: float = 0.3) -> Any:
        """Poll ``what()`` until it returns something true; that value (else AssertionError)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = what()
            except (FleetServerError, KeyError):
                last = None
            if last:
                return last
            time.sleep(step)
        raise AssertionError(f"timed out waiting; last: {last!r}\n{self.tail()}")


class TcpCut:
    """A socat forwarder ``127.0.0.1:port -> 127.0.0.1:target``: devices connect through it;
    ``down()`` cuts every connection (the broker and fleet serve stay up), ``up()`` restores."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def up(self) -> TcpCut:
        exe = shutil.which("socat") or "/usr/bin/socat"
        self.proc = subprocess.Popen(
            [exe, f"TCP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr",
             f"TCP:127.0.0.1:{self.target}"], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from edge_agent.mqtt.testing import wait_port

        wait_port(self.port, 5)
        return self

    def down(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # socat and its forked connections
            self.proc.wait()
        self.proc = None


class SimProc:
    """``edge-agent fleet simulate`` as a child process; ``report()`` reads its JSON report,
    ``stop()`` (SIGTERM: the closing records, then the final report) returns it."""

    def __init__(self, workdir: Path, broker_port: int, devices: int, *args: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.path = workdir / "sim.json"
        self.log = workdir / "sim.log"
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "fleet", "simulate", "--devices",
                 str(devices), "--broker", f"127.0.0.1:{broker_port}", "--report",
                 str(self.path), *args], stdout=subprocess.DEVNULL, stderr=logf,
                env=cli_env(), cwd=ROOT)

    def report(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.path.read_text())
            return doc
        except (OSError, ValueError):
            return {}

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.report()
