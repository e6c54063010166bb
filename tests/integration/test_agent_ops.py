"""The real agent process under systemd's protocols: NOTIFY_SOCKET, SIGTERM, SIGHUP, status.

Each test runs ``python -m edge_agent run`` as a child process with a real camera (an HTTP
MJPEG stream served by the test, which can stall) or the synthetic source, and the shipped
digits model.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.helpers import MODELS, ROOT, cli_env, run_cli
from tests.support.ops import MjpegCamera

MODEL = MODELS / "digits_int8.tflite"


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: a real unix datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            for line in data.decode().splitlines():
                self.messages.append((now, line))

    def count(self, line: str, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for t, m in list(self.messages) if m == line and since <= t < until)

    def wait_for(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; got {self.messages[-10:]}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


class AgentProcess:
    """``edge-agent run`` as a child process; stderr lines collected as they come."""

    def __init__(self, config: Path, *, root_args: tuple[str, ...] = (), **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", *root_args, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(**env),
            cwd=ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, needle: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if needle in line:
                return line
        raise AssertionError(f"no stderr line with {needle!r}; stderr:\n" + "\n".join(self.stderr))

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def write_config(tmp: Path, source: str, extra: str = "") -> Path:
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "ops-test"\nstate_dir = "{tmp / "state"}"\n'
        f'[model]\npath = "{MODEL}"\n'
        f'[camera]\nsource = "{source}"\nreconnect_initial_s = 0.2\nreconnect_max_s = 1.0\n'
        f"[metrics]\ninterval_s = 0.5\n" + extra
    )
    return cfg


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    cam = MjpegCamera(fps=20)
    yield cam
    cam.close()


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for a in started:
        a.kill()


def _wait(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_notify_ready_watchdog_follows_frames_and_stopping(
    tmp_path: Path, camera: MjpegCamera, agents: list[AgentProcess]
) -> None:
    notify = NotifyListener(tmp_path / "notify.sock")
    try:
        agent = AgentProcess(
            write_config(tmp_path, camera.url),
            NOTIFY_SOCKET=str(notify.path),
            WATCHDOG_USEC="1500000",  # the agent checks progress every 0.5 s
        )
        agents.append(agent)
        notify.wait_for(lambda: notify.count("READY=1") == 1, 60, "READY=1")
        t_ready = time.monotonic()
        notify.wait_for(lambda: notify.count("WATCHDOG=1", t_ready) >= 3, 10, "pings")
        status = [m for _, m in notify.messages if m.startswith("STATUS=")]
        assert any("fps, model digits_int8" in s for s in status), status

        camera.pause()  # the camera hangs: no frame, the pipeline stalls
        time.sleep(1.5)  # frames already in flight drain
        t_stall = time.monotonic()
        time.sleep(3.0)
        # within the stream's read timeout (5 s) nothing moves: no ping; after it the reader
        # reconnects, and waiting for the camera within its budget counts as progress again
        until = t_stall + 3.0
        assert notify.count("WATCHDOG=1", t_stall, until) == 0, "pinged while the pipeline stalled"
        assert agent.proc.poll() is None

        camera.resume()
        t_resume = time.monotonic()
        notify.wait_for(lambda: notify.count("WATCHDOG=1", t_resume) >= 2, 20, "pings resume")
        assert notify.count("READY=1") == 1  # READY only once

        agent.signal(signal.SIGTERM)
        assert agent.proc.wait(10) == 0
        assert notify.count("STOPPING=1") == 1
        t_stop = next(t for t, m in notify.messages if m == "STOPPING=1")
        assert notify.count("WATCHDOG=1", t_stop + 0.01) == 0
        assert _wait(lambda: camera.clients == 0, 5), "camera connection not released"
    finally:
        notify.close()


def test_status_running_then_stopped(tmp_path: Path, agents: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path, "synthetic")
    agent = AgentProcess(cfg, root_args=("--log-format", "json"))
    agents.append(agent)
    agent.wait_line("control socket on", timeout=60)

    def running_status() -> dict[str, object] | None:
        r = run_cli("status", "--json", "--config", str(cfg))
        if r.returncode != 0:
            return None
        data: dict[str, object] = json.loads(r.stdout)
        fps = data.get("fps")
        return data if isinstance(fps, dict) and fps.get("processed", 0) > 0 else None

    assert _wait(lambda: running_status() is not None, 20)
    st = running_status()
    assert st is not None and st["running"] is True and st["state"] == "running"
    assert st["pid"] == agent.proc.pid
    assert st["model"]["name"] == "digits_int8"  # type: ignore[index]
    assert "invoke" in st["latency_p95_ms"]  # type: ignore[operator]
    assert str(st["camera"]["source"]).startswith("synthetic")  # type: ignore[index]
    assert st["pipeline"]["schedule"] in ("overlap", "serial")  # type: ignore[index]
    human = run_cli("status", "--config", str(cfg))
    assert human.returncode == 0 and human.stdout.startswith("agent: running (pid ")
    assert "model: digits_int8" in human.stdout and "p95 ms: " in human.stdout
    assert "pipeline: schedule=" in human.stdout and "setting=auto" in human.stdout
    # the camera belongs to the running agent: the snapshot comes from it
    shot = tmp_path / "shot.jpg"
    r = run_cli("camera", "snapshot", str(shot), "--annotate", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "640x480, from the running agent" in r.stdout
    assert shot.read_bytes()[:2] == b"\xff\xd8"  # JPEG

    assert agent.stop() == 0
    stopped = run_cli("status", "--config", str(cfg))
    assert stopped.returncode == 30
    assert stopped.stdout.startswith("agent: not running; last state 'stopped'")
    assert "model: digits_int8" in stopped.stdout
    assert "agent not running" in stopped.stderr
    js = json.loads(run_cli("status", "--json", "--config", str(cfg)).stdout)
    assert js["running"] is False and js["state"] == "stopped"
    # --log-format json: every stderr line the agent logged is a JSON object
    logged = [ln for ln in agent.stderr if ln.startswith("{")]
    assert logged and all(json.loads(ln)["level"] for ln in logged)
    assert not any(" INFO " in ln for ln in agent.stderr)


def test_sighup_reloads_live_and_refuses_bad_config(
    tmp_path: Path, agents: list[AgentProcess]
) -> None:
    cfg = write_config(tmp_path, "synthetic", '[logging]\nlevel = "INFO"\n')
    agent = AgentProcess(cfg)
    agents.append(agent)
    agent.wait_line("control socket on", timeout=60)

    cfg.write_text(cfg.read_text().replace('level = "INFO"', 'level = "DEBUG"')
                   .replace("reconnect_max_s = 1.0", "reconnect_max_s = 2.0"))
    agent.signal(signal.SIGHUP)
    line = agent.wait_line("reloaded")
    assert "applied logging.level" in line and "restart to apply camera.reconnect_max_s" in line

    good = cfg.read_text()
    cfg.write_text(good + "[camera2]\nx = 1\n")
    agent.signal(signal.SIGHUP)
    line = agent.wait_line("reload refused")
    assert "keeping the running config" in line and "camera2" in line
    assert agent.proc.poll() is None  # still running on what it had
    cfg.write_text(good)  # (status itself reads the config to find the socket)
    time.sleep(1.2)  # two metric windows after the refused reload
    r = run_cli("status", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["running"] is True and st["fps"]["processed"] > 0
    # a support bundle from the running agent carries its recent log records
    bundle = tmp_path / "diag.tar.gz"
    r = run_cli("diag", "bundle", str(bundle), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    with tarfile.open(bundle) as tar:
        files = {m.name.split("/", 1)[1]: m for m in tar.getmembers()}
        logs = tar.extractfile(files["logs.txt"]).read().decode()  # type: ignore[union-attr]
        status = json.loads(tar.extractfile(files["status.json"]).read())  # type: ignore[union-attr]
    assert "reload refused" in logs and "control socket on" in logs
    assert status["running"] is True and status["metrics"]["fps"]["processed"] > 0

    t0 = time.monotonic()
    agent.signal(signal.SIGTERM)
    assert agent.proc.wait(10) == 0
    elapsed = time.monotonic() - t0
    print(f"SIGTERM to exit: {elapsed:.2f} s")
    state = json.loads((tmp_path / "state" / "status.json").read_text())
    assert state["state"] == "stopped"
    assert not (tmp_path / "state" / "agent.sock").exists()


def test_status_when_never_ran(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "synthetic")
    r = run_cli("status", "--config", str(cfg))
    assert r.returncode == 30
    assert "never ran" in r.stdout
    assert os.path.basename(str(tmp_path)) in r.stdout


def _retained(port: int, topic: str, timeout: float = 5.0) -> dict[str, object]:
    """The retained message on ``topic`` (a fresh subscriber gets it at once)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: queue.Queue[bytes] = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ops-test-reader")
    c.on_message = lambda _c, _u, msg: got.put(msg.payload)
    c.connect("127.0.0.1", port)
    c.subscribe(topic, qos=1)
    c.loop_start()
    try:
        data: dict[str, object] = json.loads(got.get(timeout=timeout))
        return data
    finally:
        c.disconnect()
        c.loop_stop()


def test_sigterm_publishes_offline_and_keeps_the_outbox(
    tmp_path: Path, agents: list[AgentProcess]
) -> None:
    import sqlite3

    from tests.support.ops import mosquitto

    with mosquitto(tmp_path) as (_proc, port):
        cfg = write_config(tmp_path, "synthetic", f"[mqtt]\nenabled = true\nport = {port}\n")
        agent = AgentProcess(cfg)
        agents.append(agent)
        agent.wait_line("control socket on", timeout=60)
        assert _wait(lambda: _retained(port, "edge/ops-test/status").get("online") is True, 20)
        assert agent.stop() == 0
        status = _retained(port, "edge/ops-test/status")
        assert status["online"] is False and status["reason"] == "stopped"
        # now with the broker gone: metrics wait in the outbox and survive the stop
        agent = AgentProcess(cfg)
        agents.append(agent)
        agent.wait_line("control socket on", timeout=60)
    time.sleep(2.0)  # four metrics intervals with no broker
    assert agent.stop() == 0
    db = sqlite3.connect(tmp_path / "state" / "mqtt" / "outbox.sqlite")
    pending = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    db.close()
    assert pending >= 3, pending


def test_journald_stream_gets_priorities_and_no_timestamps(tmp_path: Path) -> None:
    """With $JOURNAL_STREAM naming its stderr (as systemd sets it), lines carry <N> priorities."""
    cfg = write_config(tmp_path, "synthetic")
    r_fd, w_fd = os.pipe()
    st = os.fstat(w_fd)
    env = cli_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg), "--duration", "1.5"],
        stdout=subprocess.DEVNULL, stderr=w_fd, env=env, cwd=ROOT,
    )
    os.close(w_fd)
    with os.fdopen(r_fd) as err:
        lines = err.read().splitlines()
    assert proc.wait(60) == 0
    logged = [ln for ln in lines if ln.startswith("<")]
    assert any(ln.startswith("<6>INFO edge_agent.ops.control: control socket on") for ln in logged)
    assert not any(ln[:4].isdigit() for ln in lines)  # journald adds the time, we do not


def test_second_agent_on_the_same_socket_is_refused(
    tmp_path: Path, agents: list[AgentProcess]
) -> None:
    cfg = write_config(tmp_path, "synthetic")
    first = AgentProcess(cfg)
    agents.append(first)
    first.wait_line("control socket on", timeout=60)
    r = run_cli("run", "--config", str(cfg), "--duration", "5", timeout=60)
    assert r.returncode == 31
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == [f"error: {tmp_path / 'state' / 'agent.sock'}: another agent is running "
                      "(it answers there)"], r.stderr
    assert first.proc.poll() is None  # the first one is untouched and still answers
    assert run_cli("status", "--config", str(cfg)).returncode == 0
    assert first.stop() == 0


def test_status_answers_while_slow_clients_hold_the_control_socket(
    tmp_path: Path, agents: list[AgentProcess]
) -> None:
    """Issue #10: one client sending a byte every 1.5 s made ``edge-agent status`` (the
    container's health check) fail. Now 1 and then 24 such clients (more than the 16 slots;
    each reconnects when dropped) are connected while ``status`` keeps answering."""
    from tests.support.slow_clients import SlowLoris

    cfg = write_config(tmp_path, "synthetic")
    agent = AgentProcess(cfg)
    agents.append(agent)
    agent.wait_line("control socket on", timeout=60)
    sock = tmp_path / "state" / "agent.sock"
    for n in (1, 24):
        with SlowLoris(sock, n=n, every=1.5) as loris:
            assert _wait(lambda: loris.sent >= n, 20)  # noqa: B023 (used inside the loop)
            for _ in range(2):
                r = run_cli("status", "--json", "--config", str(cfg), timeout=60)
                assert r.returncode == 0, r.stderr
                assert json.loads(r.stdout)["running"] is True
            assert _wait(lambda: loris.drops >= n, 30)  # noqa: B023 (deadline from accept)
    st = json.loads(run_cli("status", "--json", "--config", str(cfg)).stdout)
    control = st["metrics"]["control"]
    assert control["timed_out"] + control["evicted"] >= 25, control
    logs = "\n".join(agent.stderr)
    assert "control socket: a client did not send a whole request line within 2 s" in logs
    assert agent.stop() == 0
