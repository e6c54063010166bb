"""Test helpers for the ops suite: a real mosquitto on a free port, free ports."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def mosquitto(
    tmp: Path, users: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real mosquitto on a free port; with ``users``, a password file and no anonymous."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    # as root mosquitto would drop to user "mosquitto", who cannot read pytest's tmp folders
    conf = [f"listener {port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}"]
    if users:
        pw = tmp / "mosquitto.passwd"
        pw.touch(mode=0o600)
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
        conf += ["allow_anonymous false", f"password_file {pw}"]
    else:
        conf.append("allow_anonymous true")
    cfile = tmp / "mosquitto.conf"
    cfile.write_text("\n".join(conf) + "\n")
    proc = subprocess.Popen(
        [exe, "-c", str(cfile)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class MjpegCamera:
    """A real network camera: HTTP multipart MJPEG (what IP cameras serve), pausable.

    ``pause()`` stops sending frames on every open connection (the agent's reader blocks in
    read, like a hung camera); ``resume()`` sends again. ``clients`` counts open connections, so
    a test can see the agent release the camera.
    """

    def __init__(
        self, fps: float = 20.0, size: tuple[int, int] = (160, 120), port: int = 0
    ) -> None:
        import http.server
        import socketserver
        import threading

        import cv2
        import numpy as np

        w, h = size
        img = np.zeros((h, w, 3), np.uint8)
        cv2.putText(img, "7", (w // 3, h - 20), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 6)
        ok, jpg = cv2.imencode(".jpg", img)
        assert ok
        part = (
            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
            + jpg.tobytes()
            + b"\r\n"
        )
        self.running = threading.Event()
        self.running.set()
        self.closed = threading.Event()
        self.clients = 0
        self.frames_sent = 0
        lock = threading.Lock()
        cam = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                with lock:
                    cam.clients += 1
                try:
                    while not cam.closed.is_set():
                        if not cam.running.wait(0.1):
                            continue
                        self.wfile.write(part)
                        self.wfile.flush()
                        cam.frames_sent += 1
                        time.sleep(1.0 / fps)
                except OSError:
                    pass
                finally:
                    with lock:
                        cam.clients -= 1

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def close(self) -> None:
        self.closed.set()
        self._server.shutdown()
        self._server.server_close()


class RtspCamera:
    """A real RTSP camera on loopback: GStreamer's RTSP server
    (``tests/support/rtsp_server.py``) run
    by the system Python, which has the GObject bindings (.ci/run installs them).

    ``start()`` / ``stop()`` boot and power off the camera (a new server process on the same
    port each time), ``stall()`` / ``resume()`` stop and restart its RTP packets while the RTSP
    session stays up (a hung camera).
    """

    PYTHON = "/usr/bin/python3"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> None:
        import os
        import tempfile

        script = Path(__file__).with_name("rtsp_server.py")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        err_file = tempfile.TemporaryFile("w+")  # GStreamer's warnings: never a full pipe
        self.proc = subprocess.Popen(
            [self.PYTHON, str(script), str(self.port)],
            stdout=subprocess.PIPE, stderr=err_file, text=True, env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "ready" once it listens
        if line.strip() != "ready":
            self.proc.wait(timeout)
            err_file.seek(0)
            err = err_file.read()
            err_file.close()
            self.stop()
            raise RuntimeError(
                f"RTSP test server did not start ({err.strip()[-300:]}); it needs Debian's "
                "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good"
            )
        err_file.close()  # the child keeps its own descriptor
        wait_port(self.port, timeout)

    def _signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(sig)

    def stall(self) -> None:
        import signal

        self._signal(signal.SIGUSR1)

    def resume(self) -> None:
        import signal

        self._signal(signal.SIGUSR2)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
