"""Test helpers shipped with the package: the C board simulator behind a real pty (socat).

``SimPort`` builds ``firmware/build/bridge_sim`` with make (once, make skips it when up to date),
then runs ``socat PTY,link=<dir>/ttyBRIDGE,raw,echo=0 EXEC:bridge_sim`` so that the host opens a
real pseudo-terminal. ``kill()`` / ``start()`` make the port disappear and come back.
``SimPort(..., restartable=True)`` runs the simulator under a shell loop instead, so that
``restart_board()`` kills the simulator and starts a new one behind the same pty: a board
power-cycled behind a USB-serial adapter that stays.
Needs make, a C compiler and socat (``scripts/test`` installs them).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
SIM_BINARY = FIRMWARE_DIR / "build" / "bridge_sim"
_build_lock = threading.Lock()


class SimError(RuntimeError):
    """The simulator or socat cannot be built or started."""


def build_sim() -> Path:
    """``make -C firmware sim``; returns the binary's path."""
    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise SimError(f"firmware sources not found in {FIRMWARE_DIR} (not a source checkout)")
    with _build_lock:
        proc = subprocess.run(
            ["make", "-s", "-C", str(FIRMWARE_DIR), "sim"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if proc.returncode != 0:
        raise SimError(f"building the simulator failed:\n{proc.stdout}{proc.stderr}")
    return SIM_BINARY


class SimPort:
    """The simulator behind a socat pty at ``self.path``; use as a context manager."""

    def __init__(
        self, directory: Path, *, sim_args: tuple[str, ...] = (), restartable: bool = False
    ) -> None:
        if shutil.which("socat") is None:
            raise SimError("socat is not installed (apt-get install socat)")
        self.path = Path(directory) / "ttyBRIDGE"
        self.sim_args = sim_args
        self.restartable = restartable
        self._pidfile = Path(directory) / "bridge_sim.pid"
        self._binary = build_sim()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        exe = " ".join([shlex.quote(str(self._binary)), *map(shlex.quote, self.sim_args)])
        if self.restartable:  # fd 3: a background job's stdin would be /dev/null otherwise
            pidfile = shlex.quote(str(self._pidfile))
            loop = f"while true; do {exe} <&3 & echo $! > {pidfile}; wait $!; done"
            target = f"SYSTEM:exec 3<&0; {loop}"  # no ':' or ',' (socat parses them)
        else:
            target = f"EXEC:{exe}"
        self._pidfile.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            ["socat", f"PTY,link={self.path},raw,echo=0", target],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.path.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                self.kill()
                raise SimError(f"socat did not create {self.path}: {err.strip()}")
            time.sleep(0.01)

    def sim_pid(self) -> int | None:
        """The running simulator's pid (``restartable`` only), None before it started."""
        try:
            return int(self._pidfile.read_text())
        except (OSError, ValueError):
            return None

    def restart_board(self, timeout: float = 5.0) -> None:
        """SIGKILL the simulator; the shell loop starts a new one behind the same pty (power
        cycle: boot count 1, reset reason power-on, event seq from 1 again)."""
        if not self.restartable:
            raise SimError("restart_board() needs SimPort(..., restartable=True)")
        if not wait_for(lambda: self.sim_pid() is not None, timeout):
            raise SimError(f"the simulator behind {self.path} did not start")
        old = self.sim_pid()
        assert old is not None
        os.kill(old, signal.SIGKILL)
        if not wait_for(lambda: self.sim_pid() not in (None, old), timeout):
            raise SimError(f"the simulator behind {self.path} did not start again")

    def kill(self) -> None:
        """Stop socat and the simulator: the pty disappears."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # socat's own session: socat + simulator
            except ProcessLookupError:
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
        # socat usually removes its link on SIGTERM, but not when the simulator died first
        self.path.unlink(missing_ok=True)

    @property
    def url(self) -> str:
        return str(self.path)

    def __enter__(self) -> SimPort:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class TcpSim:
    """The simulator behind ``socat TCP-LISTEN`` on a free local port: ``socket://`` URLs."""

    def __init__(self) -> None:
        if shutil.which("socat") is None:
            raise SimError("socat is not installed (apt-get install socat)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._binary = build_sim()
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> TcpSim:
        self._proc = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr", f"EXEC:{self._binary}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_for(self._listening, 5.0):
            self.__exit__()
            raise SimError(f"socat did not listen on 127.0.0.1:{self.port}")
        return self

    def _listening(self) -> bool:
        # socat serves one connection (the probe would be it): look at the listen table instead
        want = f":{self.port:04X} "
        try:
            with open("/proc/net/tcp") as f:
                return any(want in line and " 0A " in line for line in f)
        except OSError:
            time.sleep(0.2)
            return True

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            proc.wait(5)


def wait_for(pred: Callable[[], object], timeout: float = 4.0, step: float = 0.02) -> bool:
    """Poll ``pred`` until it is truthy or ``timeout`` passes; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
